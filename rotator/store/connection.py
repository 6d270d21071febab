"""redis-py clients for everything but the hot path (management, CLI, workers).

A management write is acknowledged only once it is on disk: `Durability` runs
WAITAOF 1 0 after the writes, on their connection, so a crash right after a 201
loses nothing, while the delivery path keeps `appendfsync everysec`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rotator.domain.errors import StoreUnavailable
from rotator.settings import Settings
from rotator.store.address import StoreAddress

log = logging.getLogger("rotator.store")

Redis = aioredis.Redis | RedisCluster

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError)
"""What redis-py raises when the store cannot be reached or answer in time (a cluster in
state fail answers CLUSTERDOWN). Includes BusyLoadingError (a ConnectionError): a server
still loading its AOF after a restart."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means "the store is unreachable or too slow" (answered 503, exit 2).

    A cluster client that reaches no node raises RedisClusterException("Redis Cluster
    cannot be connected") from the ConnectionError; the same class also reports
    programming errors (keys in different slots), which must stay loud, so it counts
    only when an unavailability error caused it.
    """
    if isinstance(exc, UNAVAILABLE):
        return True
    return isinstance(exc, RedisClusterException) and isinstance(exc.__cause__, UNAVAILABLE)


WAITAOF_TIMEOUT_MS = 1000
"""How long a management write waits for its fsync (`appendfsync everysec`: well under)."""
CLUSTER_ROUNDS = 5
CLUSTER_PAUSE_S = 0.05


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
        return RedisCluster(
            **address.redis_kwargs(cluster=True),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
    return aioredis.Redis(
        **address.redis_kwargs(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )


class Durability:
    """Runs a pipeline of writes followed by WAITAOF 1 0 on the same connection.

    WAITAOF waits for the writes of its own connection, so it must share the
    pipeline (one connection) with them; a reply other than "fsynced locally"
    raises StoreUnavailable (the write is not acknowledged). On a Redis Cluster
    see `_execute_on_cluster`. Remembers when the server cannot (appendonly off,
    as in the tests' fast server, or a Redis older than 7.2).
    """

    def __init__(self, timeout_ms: int = WAITAOF_TIMEOUT_MS) -> None:
        self.supported: bool | None = None
        self.timeout_ms = timeout_ms

    async def execute(self, pipe: Any) -> list[Any]:
        if isinstance(pipe, ClusterPipeline):
            return await self._execute_on_cluster(pipe)
        if self.supported is False:
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
            log.info("WAITAOF unavailable (%s); writes are not fsync-acknowledged", waited)
            self.supported = False
        elif isinstance(waited, Exception):
            raise waited
        elif int(waited[0]) < 1:
            # applied in memory, not on disk within the timeout: not acknowledged
            log.warning("WAITAOF: write not fsynced within %d ms", self.timeout_ms)
            raise StoreUnavailable()
        else:
            self.supported = True

    async def _execute_on_cluster(self, pipe: ClusterPipeline) -> list[Any]:
        """Each write pinned to the primary of its slot, then one WAITAOF per such node.

        A node's commands go out on one of its connections, in order, so each WAITAOF
        follows its node's writes on their connection. A keyless WAITAOF left to
        redis-py's ClusterPipeline would go to the default node: another connection, or
        another server, waiting for nothing. A write answered MOVED, ASK or TRYAGAIN did not
        run; it is sent again where it belongs (after ASKING for ASK), with a WAITAOF.
        """
        client: RedisCluster = pipe._client  # redis-py < 6 (pinned by arq)
        await client.initialize()  # a no-op once the slot map is loaded
        todo = [_Write(i, cmd.args, cmd.kwargs) for i, cmd in enumerate(pipe._command_stack)]
        pipe._command_stack = []
        results: list[Any] = [None] * len(todo)
        for attempt in range(CLUSTER_ROUNDS):
            for write in todo:
                if write.node is None:
                    slot = await client._determine_slot(*write.args)
                    write.node = client.nodes_manager.get_node_from_slot(slot)
            todo = await self._cluster_round(client, todo, results)
            if not todo:
                return results
            await asyncio.sleep(CLUSTER_PAUSE_S * (attempt + 1))
        log.warning("cluster: writes still redirected after %d rounds", CLUSTER_ROUNDS)
        raise StoreUnavailable()

    async def _cluster_round(
        self, client: RedisCluster, todo: list[_Write], results: list[Any]
    ) -> list[_Write]:
        """Send `todo` (+ a WAITAOF per node); fill `results`; return the writes to resend.

        Each node's commands go out as one pipeline on one of its connections (what
        ClusterPipeline does too, minus its retry of the whole stack after a connection
        error, which would resend writes that ran and lose the WAITAOFs' targets).
        """
        batches: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
        sent: list[tuple[_Write, PipelineCommand]] = []
        for write in todo:
            assert write.node is not None
            _, batch = batches.setdefault(write.node.name, (write.node, []))
            if write.asking:
                batch.append(PipelineCommand(len(batch), "ASKING"))
            command = PipelineCommand(len(batch), *write.args, **write.kwargs)
            batch.append(command)
            sent.append((write, command))
        waits: list[PipelineCommand] = []
        if self.supported is not False:
            for _, batch in batches.values():
                waits.append(PipelineCommand(len(batch), "WAITAOF", 1, 0, self.timeout_ms))
                batch.append(waits[-1])
        # a connection that fails while sending raises here: the caller answers 503
        await asyncio.gather(*(node.execute_pipeline(batch) for node, batch in batches.values()))
        again: list[_Write] = []
        moved = False
        for write, command in sent:
            reply = command.result
            if isinstance(reply, MovedError):
                moved = True
                again.append(_Write(write.position, write.args, write.kwargs))
            elif isinstance(reply, AskError):
                target = client.get_node(*reply.node_addr)
                moved |= target is None
                again.append(_Write(write.position, write.args, write.kwargs, target, True))
            elif isinstance(reply, TryAgainError):
                # a multi-key write into a slot being migrated: ask its owner again later
                again.append(_Write(write.position, write.args, write.kwargs))
            elif isinstance(reply, Exception):
                raise reply
            else:
                results[write.position] = reply
        for wait in waits:
            self._judge(wait.result)
        if moved:
            await client.nodes_manager.initialize()  # the slot map is stale: reload it
        return again


@dataclass
class _Write:
    """One queued write of a cluster pipeline, and where it is to be sent."""

    position: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    node: ClusterNode | None = None
    asking: bool = False


async def ping(client: Redis) -> None:
    try:
        await client.ping()
    except UNAVAILABLE as exc:
        raise StoreUnavailable() from exc


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
