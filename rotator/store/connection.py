"""redis-py clients for everything but the hot path (management, CLI, workers).

A management write is acknowledged only once it is on disk: `durable()` runs
WAITAOF 1 0 after the write, so a `kill -9` of Valkey right after a 201 loses
nothing, while the delivery path keeps `appendfsync everysec`.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rotator.domain.errors import StoreUnavailable
from rotator.settings import Settings

log = logging.getLogger("rotator.store")

Redis = aioredis.Redis | RedisCluster

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def connect(settings: Settings, url: str | None = None) -> Redis:
    """A management client for the data store (a cluster client with REDIS_CLUSTER=1)."""
    url = url or settings.redis_url
    assert url, "redis_url is resolved (embedded server started) before connecting"
    timeout_s = settings.redis_timeout_ms / 1000
    if settings.redis_cluster and url == settings.redis_url:
        return RedisCluster.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )


class Durability:
    """Runs a pipeline of writes followed by WAITAOF 1 0 on the same connection.

    WAITAOF waits for the writes of its own connection, so it must share the
    pipeline (one connection) with them. Remembers when the server cannot
    (appendonly off, as in the tests' fast server, or a Redis older than 7.2).
    """

    def __init__(self) -> None:
        self.supported: bool | None = None

    async def execute(self, pipe: Any) -> list[Any]:
        if self.supported is False:
            return await pipe.execute()
        pipe.execute_command("WAITAOF", 1, 0, 1000)
        results = await pipe.execute(raise_on_error=False)
        waited = results.pop()
        for result in results:
            if isinstance(result, Exception):
                raise result
        if isinstance(waited, ResponseError):
            log.info("WAITAOF unavailable (%s); writes are not fsync-acknowledged", waited)
            self.supported = False
        elif isinstance(waited, Exception):
            raise waited
        else:
            self.supported = True
        return results


async def ping(client: Redis) -> None:
    try:
        await client.ping()
    except UNAVAILABLE as exc:
        raise StoreUnavailable() from exc


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
