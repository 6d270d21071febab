"""FastRedis on a Redis/Valkey Cluster: one pipelined Node per primary, routed by slot.

The slot map comes from CLUSTER SLOTS. A call goes to the primary of keys[0]'s
slot (every key of one script shares the tenant's hash tag, so one slot). MOVED
patches that slot at once and refreshes the whole map in the background (at most
one refresh at a time, at most every CLUSTER_REFRESH_EVERY_S); ASK sends ASKING and the
command back to back on the target's connection (adjacent there, so nothing can
come between them); NOSCRIPT resends as EVAL on the node that answered it;
TRYAGAIN and CLUSTERDOWN are retried after a short pause (at most CLUSTER_MAX_PAUSES).
A call gives up with StoreUnavailable after CLUSTER_MAX_ATTEMPTS. A call whose connection
fails is not retried (the script may have run): it raises StoreUnavailable and
triggers a map refresh, since a failover may have moved the slot.
"""

from __future__ import annotations

import asyncio
import logging
from binascii import crc_hqx
from collections.abc import Sequence
from typing import Any

from rotator.domain.errors import StoreUnavailable
from rotator.store import refusals
from rotator.store.fast.endpoint import Endpoint
from rotator.store.fast.node import Node
from rotator.store.fast.protocol import ReplyError, pack_command
from rotator.store.fastredis import FastRedis
from rotator.store.scripts import Script
from rotator.tuning import (
    CLUSTER_MAX_ATTEMPTS,
    CLUSTER_MAX_PAUSES,
    CLUSTER_PAUSE_S,
    CLUSTER_REFRESH_EVERY_S,
)

log = logging.getLogger("rotator.store.fast")

SLOTS = 16384

_ASKING = pack_command(("ASKING",))
_CLUSTER_SLOTS = pack_command(("CLUSTER", "SLOTS"))


def key_slot(key: str | bytes) -> int:
    """The cluster slot of a key: CRC16 (XMODEM) of its hash tag `{...}`, or of the key."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return crc_hqx(data, 0) & (SLOTS - 1)


def _discard(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # an ASKING reply nobody awaits: retrieve a failure so none is logged


class ClusterFastRedis(FastRedis):
    """See the module docstring. Built by FastRedis.connect(url, cluster=True)."""

    def __init__(self, seed: Endpoint, timeout_s: float) -> None:
        self._seed = seed
        self._timeout_s = timeout_s
        self._nodes: dict[tuple[str, int], Node] = {}
        seed_node = self._node_at(seed.host, seed.port)
        self._slots: list[Node] = [seed_node] * SLOTS
        self._any = seed_node
        self._refreshing: asyncio.Task[None] | None = None
        self._next_refresh_at = 0.0
        self._closed = False

    @classmethod
    async def open(cls, seed: Endpoint, timeout_s: float) -> ClusterFastRedis:
        if seed.unix_path is not None:
            raise ValueError("a cluster node is addressed as redis://host:port")
        if seed.db:
            raise ValueError("a cluster has only database 0")
        self = cls(seed, timeout_s)
        try:
            await self._any.start()
            await self._refresh()
        except BaseException:
            await self.close()
            raise
        return self

    # --- calls ----------------------------------------------------------------------------
    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        slot = key_slot(keys[0]) if keys else None
        packed = pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
        return await self._call(slot, packed, script, keys, args)

    async def execute(self, *args: Any) -> Any:
        """Sent to any primary; a command on a key still lands right by following MOVED."""
        return await self._call(None, pack_command(args), None, (), ())

    async def _call(
        self,
        slot: int | None,
        packed: bytes,
        script: Script | None,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> Any:
        node = self._any if slot is None else self._slots[slot]
        asking = False
        pauses = 0
        message = ""
        for _ in range(CLUSTER_MAX_ATTEMPTS):
            try:
                conn = node.conn or await node.reconnect()
                if asking:
                    conn.request(_ASKING).add_done_callback(_discard)
                reply = await conn.request(packed)
            except StoreUnavailable:
                self._schedule_refresh()  # a failover may have given the slot to another node
                raise
            if reply.__class__ is not ReplyError:
                return reply
            message: str = reply.message
            if message.startswith("MOVED "):
                node, moved_slot = self._redirect(message, node)
                self._slots[moved_slot] = node
                self._schedule_refresh()
                asking = False
            elif message.startswith("ASK "):
                node, _ = self._redirect(message, node)
                asking = True
            elif message.startswith("NOSCRIPT") and script is not None:
                # the same node (and ASKING state) again, now with the source
                packed = pack_command(("EVAL", script.source, len(keys), *keys, *args))
                script = None
            elif message.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                # a migration in progress, or the cluster healing: pause, look again; but
                # briefly, an outage is answered with 503 rather than with a slow request
                pauses += 1
                if pauses > CLUSTER_MAX_PAUSES:
                    break
                self._schedule_refresh()
                await asyncio.sleep(CLUSTER_PAUSE_S * pauses)
                if message.startswith("CLUSTERDOWN"):
                    node = self._any if slot is None else self._slots[slot]
                    asking = False
            elif (code := refusals.code_of_reply(message)) is not None:
                # OOM, READONLY (a failover made this node a replica), BUSY …: unavailable
                self._schedule_refresh()
                raise refusals.StoreRefused(code) from reply
            else:
                raise reply
        log.warning("redis cluster: gave up on a call (last answer: %s)", message)
        raise StoreUnavailable()

    def _redirect(self, message: str, asked: Node) -> tuple[Node, int]:
        """'MOVED 3999 10.0.0.2:6381' (or ASK) -> (that node, 3999)."""
        _, slot, address = message.split(" ", 2)
        host, _, port = address.rpartition(":")
        if host in ("", "?"):  # the node does not know its own address: the one we used
            host = asked.endpoint.host
        return self._node_at(host, int(port)), int(slot)

    def _node_at(self, host: str, port: int) -> Node:
        node = self._nodes.get((host, port))
        if node is None:
            node = self._nodes[host, port] = Node(self._seed.at(host, port), self._timeout_s)
        return node

    # --- the slot map ---------------------------------------------------------------------
    def _schedule_refresh(self) -> None:
        if self._refreshing is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_refresh_at:
            return
        self._refreshing = loop.create_task(self._refresh_in_background())

    async def _refresh_in_background(self) -> None:
        try:
            await self._refresh()
        except (StoreUnavailable, ReplyError) as exc:
            log.warning("redis cluster: slot map refresh failed: %r", exc)
        finally:
            self._refreshing = None
            self._next_refresh_at = asyncio.get_running_loop().time() + CLUSTER_REFRESH_EVERY_S

    async def _refresh(self) -> None:
        """Load CLUSTER SLOTS from the first known node that answers (then the seed)."""
        candidates = [*dict.fromkeys([*self._nodes.values(), self._node_at_seed()])]
        failure: Exception | None = None
        for node in candidates:
            try:
                conn = node.conn or await node.reconnect()
                reply = await conn.request(_CLUSTER_SLOTS)
            except StoreUnavailable as exc:
                failure = exc
                continue
            if reply.__class__ is ReplyError:
                failure = reply
                continue
            if self._apply(reply, node):
                return
        if isinstance(failure, ReplyError):
            raise failure  # e.g. "cluster support disabled": a configuration error
        raise StoreUnavailable() from failure

    def _node_at_seed(self) -> Node:
        return self._node_at(self._seed.host, self._seed.port)

    def _apply(self, reply: list[Any], asked: Node) -> bool:
        slots: list[Node | None] = [None] * SLOTS
        primaries: list[Node] = []
        for start, end, primary, *_replicas in reply:
            host = primary[0].decode()
            if host in ("", "?"):
                host = asked.endpoint.host
            node = self._node_at(host, int(primary[1]))
            slots[start : end + 1] = [node] * (end - start + 1)
            if node not in primaries:
                primaries.append(node)
        if not primaries:
            return False  # a node that has not joined yet; ask another
        fallback = primaries[0]  # uncovered slots: it answers CLUSTERDOWN, as it should
        self._slots = [node or fallback for node in slots]
        self._any = fallback
        for address, node in list(self._nodes.items()):
            if node not in primaries:
                # in-flight calls on it may still be answered: close it a little later
                asyncio.get_running_loop().call_later(
                    2 * self._timeout_s + 1, self._retire, address, node
                )
        return True

    def _retire(self, address: tuple[str, int], node: Node) -> None:
        if self._closed or node is self._any or node in self._slots:
            return  # back in the map (or patched in by a MOVED) since
        if self._nodes.get(address) is node:
            del self._nodes[address]
        node.close_now()

    # --- lifecycle ------------------------------------------------------------------------
    async def close(self) -> None:
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        nodes = list(self._nodes.values())
        self._nodes.clear()
        await asyncio.gather(*(node.close() for node in nodes))

    @property
    def connect_attempts(self) -> int:
        return sum(node.connect_attempts for node in self._nodes.values())
