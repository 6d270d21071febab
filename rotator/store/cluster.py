"""The management client of a Redis Cluster, with pipelines of our own (ClusterBatch).

Why not redis-py's ClusterPipeline: a durable write needs WAITAOF on the very connection
that carried it (rotator/store/connection.py Durability), on the node that owns its slot,
and ClusterPipeline has no public way to say where its commands go, to add a command per
node, or to read back what was queued. So the batching is ours and uses redis-py's public
API only: the cluster client's slot map (`initialize`, `get_node_from_key`), and on each
node a plain `redis.asyncio.Redis` pipeline. Redirects are ours too: a command answered
MOVED, ASK or TRYAGAIN did not run, and is sent again where the reply says (ASKING first
for ASK), in the next round.

Each node has a client of its own (a pool of its connections), next to redis-py's; they
close with the cluster client (`aclose`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands import AsyncCoreCommands
from redis.exceptions import (
    AskError,
    MovedError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

from rotator.domain.errors import StoreUnavailable
from rotator.store.address import StoreAddress

log = logging.getLogger("rotator.store")

ROUNDS = 5
"""Rounds of redirects a batch follows before it gives up (503): a slot migrates in one."""
PAUSE_S = 0.05
"""Pause before round n+1 (times n): a TRYAGAIN lasts until the migration's keys moved."""

SCRIPT_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})
"""Commands whose keys follow the script and the key count."""
KEYLESS = frozenset({"ASKING", "WAITAOF", "WAIT", "PING", "TIME", "INFO", "CONFIG", "SCRIPT"})
"""Commands a batch cannot route (no key): queued by mistake, they fail loudly."""


class Cluster(RedisCluster):
    """A RedisCluster whose `pipeline()` is a ClusterBatch; built from a StoreAddress so
    each node's own client has the same credentials, TLS options and timeouts."""

    def __init__(self, address: StoreAddress, **kwargs: Any) -> None:
        super().__init__(**address.redis_kwargs(cluster=True), **kwargs)
        self.address = address
        self._timeouts = {
            name: kwargs[name] for name in ("socket_timeout", "socket_connect_timeout")
            if name in kwargs
        }  # fmt: skip
        self._nodes: dict[tuple[str, int], aioredis.Redis] = {}
        self._moved: dict[int, tuple[str, int]] = {}
        """Slots a batch found MOVED, until redis-py's slot map agrees (its map learns from
        its own commands' redirects, not from ours)."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Cluster:
        return cls(StoreAddress.parse(url), **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterBatch:
        if transaction:
            raise RedisClusterException("a cluster batch is not a transaction (use a script)")
        return ClusterBatch(self)

    def owner(self, key: Any) -> tuple[str, int]:
        """(host, port) of the primary serving `key`'s slot, as last seen."""
        slot = self.keyslot(key)
        node = self.get_node_from_key(key)
        mapped = (node.host, int(node.port))
        moved = self._moved.get(slot)
        if moved is None or moved == mapped:
            self._moved.pop(slot, None)
            return mapped
        return moved

    def moved(self, slot: int, address: tuple[str, int] | None) -> None:
        """A node answered MOVED: `slot` is served at `address` now."""
        if address is not None:
            self._moved[slot] = address

    def node(self, host: str, port: int) -> aioredis.Redis:
        """The client of the node at host:port (made on first use).

        No retry: a pipeline resent after a connection error would run again writes that
        ran (a second "create" answers "exists"), and its WAITAOF would wait for the wrong
        connection's writes; the caller answers 503 instead.
        """
        client = self._nodes.get((host, port))
        if client is None:
            client = aioredis.Redis(
                **self.address.at(host, port).redis_kwargs(),
                **self._timeouts,
                retry=Retry(NoBackoff(), 0),
            )
            self._nodes[(host, port)] = client
        return client

    async def aclose(self) -> None:
        # redis-py also calls this itself to reload the slot map after connection errors:
        # the node clients go too, and are made again on their next use
        nodes, self._nodes = list(self._nodes.values()), {}
        await asyncio.gather(*(client.aclose() for client in nodes), return_exceptions=True)
        await super().aclose()


def first_key(args: Sequence[Any]) -> Any:
    """The key a command is routed by: every key of one command shares a slot (one tenant's
    keys share its hash tag), so the first is enough."""
    name = str(args[0]).upper()
    if name in SCRIPT_COMMANDS:
        if int(args[2]) < 1:
            raise RedisClusterException(f"{name} without keys cannot be routed in a cluster")
        return args[3]
    if name in KEYLESS or len(args) < 2:
        raise RedisClusterException(f"{name} has no key to route it by in a cluster")
    return args[1]


@dataclass
class _Command:
    """One queued command, and where the next round sends it (None: the slot's owner)."""

    position: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    address: tuple[str, int] | None = None
    asking: bool = False


class ClusterBatch(AsyncCoreCommands):
    """Commands queued (`batch.hset(...)` etc., like a pipeline) and sent with one plain
    pipeline per node; results in queuing order. Not atomic, as ClusterPipeline is not.

    `run(extra)` appends `extra` (say WAITAOF) to each node's pipeline, after that node's
    commands on the same connection, and returns its replies too: Durability's hook.
    """

    def __init__(self, client: Cluster) -> None:
        self.client = client
        self._queued: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterBatch:
        self._queued.append((args, kwargs))
        return self

    def __len__(self) -> int:
        return len(self._queued)

    def __bool__(self) -> bool:
        return True  # a batch is never "false" because it is still empty

    async def __aenter__(self) -> ClusterBatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reset()

    def reset(self) -> None:
        self._queued = []

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        results, _ = await self.run(None)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    async def run(self, extra: tuple[Any, ...] | None) -> tuple[list[Any], list[Any]]:
        """Send everything queued (each command to the owner of its key's slot), following
        redirects; returns (the replies in queuing order, errors included, and the replies
        to `extra`, one per node pipeline sent). Raises StoreUnavailable when commands are
        still redirected after ROUNDS rounds, and what a connection raises."""
        todo = [_Command(i, args, kwargs) for i, (args, kwargs) in enumerate(self._queued)]
        self.reset()
        results: list[Any] = [None] * len(todo)
        extras: list[Any] = []
        if not todo:
            return results, extras
        await self.client.initialize()  # a no-op once the slot map is loaded
        for attempt in range(ROUNDS):
            for command in todo:
                if command.address is None:
                    command.address = self.client.owner(first_key(command.args))
            todo = await self._round(todo, results, extras, extra)
            if not todo:
                return results, extras
            await asyncio.sleep(PAUSE_S * (attempt + 1))
        log.warning("cluster: commands still redirected after %d rounds", ROUNDS)
        raise StoreUnavailable()

    async def _round(
        self,
        todo: list[_Command],
        results: list[Any],
        extras: list[Any],
        extra: tuple[Any, ...] | None,
    ) -> list[_Command]:
        """One pipeline per node, sent concurrently; fills `results`, appends to `extras`
        and returns the commands to send again."""
        by_node: dict[tuple[str, int], list[_Command]] = {}
        for command in todo:
            assert command.address is not None
            by_node.setdefault(command.address, []).append(command)
        pipes = []
        for address, commands in by_node.items():
            pipe = self.client.node(*address).pipeline(transaction=False)
            for command in commands:
                if command.asking:
                    pipe.execute_command("ASKING")  # lets the importing node take the next one
                pipe.execute_command(*command.args, **command.kwargs)
            if extra is not None:
                pipe.execute_command(*extra)
            pipes.append(pipe)
        # a connection that fails raises here (the caller answers 503); the commands of
        # the other nodes may have run: not acknowledged is not the same as not written
        replies = await asyncio.gather(*(pipe.execute(raise_on_error=False) for pipe in pipes))
        again: list[_Command] = []
        for commands, node_replies in zip(by_node.values(), replies, strict=True):
            answers = iter(node_replies)
            for command in commands:
                if command.asking:
                    next(answers)  # ASKING's OK
                reply = next(answers)
                redirect = _redirect(reply)
                if redirect is None:
                    results[command.position] = reply
                    continue
                if redirect.moved_slot is not None:
                    self.client.moved(redirect.moved_slot, redirect.address)
                again.append(
                    _Command(
                        command.position,
                        command.args,
                        command.kwargs,
                        redirect.address,
                        redirect.asking,
                    )
                )
            if extra is not None:
                extras.append(next(answers))
        return again


@dataclass(frozen=True)
class _Redirect:
    """A reply saying the command did not run on that node, and where to send it."""

    address: tuple[str, int] | None  # None: the slot's owner, as the map has it
    asking: bool = False
    moved_slot: int | None = None


def _redirect(reply: Any) -> _Redirect | None:
    """The redirect `reply` is, if any. redis-py parses these errors into their classes in
    some versions and leaves them a plain ResponseError ("MOVED 3999 10.0.0.2:6379") in
    others: both are read."""
    if not isinstance(reply, ResponseError):
        return None
    if isinstance(reply, TryAgainError):
        return _Redirect(None)
    if isinstance(reply, AskError):  # MovedError is an AskError
        address = (reply.host, int(reply.port))
        if isinstance(reply, MovedError):
            return _Redirect(address, moved_slot=int(reply.slot_id))
        return _Redirect(address, asking=True)
    words = str(reply).split()
    if words == ["TRYAGAIN"] or (words and words[0] == "TRYAGAIN"):
        # a multi-key command into a slot being migrated: its owner, again, a little later
        return _Redirect(None)
    if len(words) == 3 and words[0] in ("MOVED", "ASK"):
        host, _, port = words[2].rpartition(":")
        address = (host.strip("[]"), int(port))
        if words[0] == "MOVED":
            return _Redirect(address, moved_slot=int(words[1]))
        return _Redirect(address, asking=True)
    return None
