"""redis-py clients for everything but the hot path (management, CLI, workers).

A management write is acknowledged only once it is on disk: `Durability` runs
WAITAOF 1 0 after the writes, on their connection, so a crash right after a 201
loses nothing, while the delivery path keeps `appendfsync everysec`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rotator.domain.errors import StoreUnavailable
from rotator.settings import Settings
from rotator.store import refusals
from rotator.store.address import StoreAddress
from rotator.store.cluster import Cluster, ClusterBatch
from rotator.tuning import MANAGEMENT_CONNECTIONS, MANAGEMENT_POOL_WAIT_S

log = logging.getLogger("rotator.store")

Redis = aioredis.Redis | Cluster

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError)
"""What redis-py raises when the store cannot be reached or answer in time (a cluster in
state fail answers CLUSTERDOWN). Includes BusyLoadingError (a ConnectionError): a server
still loading its AOF after a restart."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means "the store is unreachable or too slow" (answered 503, exit 2),
    or up but refusing to serve now (rotator/store/refusals.py: OOM, READONLY, BUSY …);
    our own StoreUnavailable (a failed fsync wait, the delivery client) included.

    A cluster client that reaches no node raises RedisClusterException("Redis Cluster
    cannot be connected") from the ConnectionError; the same class also reports
    programming errors (keys in different slots), which must stay loud, so it counts
    only when an unavailability error caused it.
    """
    if isinstance(exc, (*UNAVAILABLE, StoreUnavailable)) or refusals.code_of(exc) is not None:
        return True
    return isinstance(exc, RedisClusterException) and isinstance(exc.__cause__, UNAVAILABLE)


def unavailability(exc: BaseException) -> str:
    """How a log line or the CLI names what made the store unavailable: a refusal's code
    (never its message: a pipeline's arguments), else the error's class."""
    return refusals.code_of(exc) or getattr(exc, "code", None) or type(exc).__name__


@contextlib.contextmanager
def suppress_unavailable() -> Iterator[None]:
    """contextlib.suppress for what `is_unavailable` recognises: a best-effort step skipped
    while the store is down or refusing; any other error still raises."""
    try:
        yield
    except Exception as exc:
        if not is_unavailable(exc):
            raise


WAITAOF_TIMEOUT_MS = 1000
"""How long a management write waits for its fsync (`appendfsync everysec`: well under)."""
WAITAOF_RECHECK_S = 60.0
"""A server found without WAITAOF (AOF off) is asked again this often: turning AOF back on
brings acknowledged writes back without restarting the API."""


def connect(settings: Settings, url: str | None = None) -> Redis:
    """A management client for the data store (a cluster client with REDIS_CLUSTER=1).

    Configured explicitly from the one reading of the URL (StoreAddress), never by
    redis-py's own from_url: so TLS checks the hostname as FastRedis does, and a
    parameter FastRedis would not understand cannot mean something here.
    """
    url = url or settings.redis_url
    assert url, "redis_url is resolved (embedded server started) before connecting"
    address = StoreAddress.parse(url)
    timeout_s = settings.redis_timeout_ms / 1000
    if settings.redis_cluster and url == settings.redis_url:
        # peers are reached at the addresses the cluster announces, with these TLS options
        return Cluster(address, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    configured = aioredis.Redis(
        **address.redis_kwargs(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        # no retry (redis-py 6 retries by default): a durable pipeline sent again after a
        # connection error would run its writes twice, and a second "create" says "exists"
        retry=Retry(NoBackoff(), 0),
    ).connection_pool
    # redis-py 5's default pool opens a connection while holding its lock: against a frozen
    # store (the kernel accepts, nothing answers) concurrent requests then failed one connect
    # timeout after another (the 20th after 20 s). The blocking pool connects outside its
    # lock, so each fails within the timeout; same connection class and options.
    pool = aioredis.BlockingConnectionPool(
        connection_class=configured.connection_class,
        max_connections=MANAGEMENT_CONNECTIONS,
        timeout=MANAGEMENT_POOL_WAIT_S,
        **configured.connection_kwargs,
    )
    return aioredis.Redis.from_pool(pool)


class Durability:
    """Runs a pipeline of writes followed by WAITAOF 1 0 on the same connection.

    WAITAOF waits for the writes of its own connection, so it must share the
    pipeline (one connection) with them; a reply other than "fsynced locally"
    raises StoreUnavailable (the write is not acknowledged). On a Redis Cluster
    see `_execute_on_cluster`. Remembers when the server cannot (appendonly off,
    as in the tests' fast server, or a Redis older than 7.2), and asks again every
    WAITAOF_RECHECK_S; losing it on a server that had it is a warning.

    The interface is `redis.pipeline(transaction=False)`, queue writes on it (any
    command, scripts included), `await durability.execute(pipe)`: the replies in order.
    """

    def __init__(
        self, timeout_ms: int = WAITAOF_TIMEOUT_MS, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.supported: bool | None = None
        self.timeout_ms = timeout_ms
        self._monotonic = monotonic
        self._recheck_at = 0.0

    def _waits(self) -> bool:
        """Whether this write is sent with its WAITAOF (always, but while the server is known
        not to have it, until the next re-check)."""
        return self.supported is not False or self._monotonic() >= self._recheck_at

    async def execute(self, pipe: Any) -> list[Any]:
        if isinstance(pipe, ClusterBatch):
            return await self._execute_on_cluster(pipe)
        if isinstance(pipe, ClusterPipeline):
            # no public way to send its commands with a WAITAOF on each node's connection
            raise TypeError("a durable cluster write needs rotator.store.cluster.Cluster")
        if not self._waits():
            return await pipe.execute()
        pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms)
        results = await pipe.execute(raise_on_error=False)
        waited = results.pop()
        for result in results:
            if isinstance(result, Exception):
                raise result
        self._judge(waited)
        return results

    def _judge(self, waited: Any) -> None:
        """One WAITAOF reply: [fsynced locally (0|1), replicas], or an error."""
        if isinstance(waited, ResponseError):
            if self.supported is not False:
                # at start a configuration (say AOF off in tests); later a loss to be loud about
                (log.warning if self.supported else log.info)(
                    "WAITAOF unavailable (%s); writes are not fsync-acknowledged (asked "
                    "again every %.0f s)", waited, WAITAOF_RECHECK_S
                )  # fmt: skip
            self.supported = False
            self._recheck_at = self._monotonic() + WAITAOF_RECHECK_S
        elif isinstance(waited, Exception):
            raise waited
        elif int(waited[0]) < 1:
            # applied in memory, not on disk within the timeout: not acknowledged
            log.warning("WAITAOF: write not fsynced within %d ms", self.timeout_ms)
            raise StoreUnavailable()
        else:
            if self.supported is False:
                log.warning("WAITAOF available again: writes are fsync-acknowledged")
            self.supported = True

    async def _execute_on_cluster(self, batch: ClusterBatch) -> list[Any]:
        """Each node's writes, then its WAITAOF, in one pipeline on one of its connections.

        A keyless WAITAOF sent on its own would go to some node's some connection, waiting
        for nothing: ClusterBatch.run appends it to every node pipeline it sends, in every
        round (a write redirected by MOVED, ASK or TRYAGAIN is sent again with one too).
        """
        waitaof = ("WAITAOF", 1, 0, self.timeout_ms) if self._waits() else None
        results, waits = await batch.run(waitaof)
        for result in results:
            if isinstance(result, Exception):
                raise result
        for waited in waits:
            self._judge(waited)
        return results


async def ping(client: Redis) -> None:
    try:
        await client.ping()
    except UNAVAILABLE as exc:
        raise StoreUnavailable() from exc
    except ResponseError as exc:  # BUSY: a script past busy-reply-threshold
        code = refusals.code_of(exc)
        if code is None:
            raise
        raise refusals.StoreRefused(code) from exc


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
