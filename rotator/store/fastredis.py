"""The hot path's Redis client: one pipelined connection per server (see rotator/store/fast/).

Every delivery costs one EVALSHA, so the per-call Python path is kept short: pack
with hiredis, queue on the connection (written once per loop tick together with
the other requests of that tick), await one future. Replies have the shapes
redis-py gives with decode_responses=False: bytes, int, list, None; status replies
are bytes (b"OK"), no per-command response callbacks.

Failures: Redis unreachable, the connection dropping or a reply later than
timeout_ms raise StoreUnavailable (the connection is then dropped and the next call
reconnects); an error reply raises ReplyError; NOSCRIPT is answered by resending
the call as EVAL, which caches the script again. `connect()` connects at once, so a
wrong address or password is reported at startup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rotator.store import refusals
from rotator.store.address import StoreAddress
from rotator.store.fast.endpoint import parse_url
from rotator.store.fast.node import Node
from rotator.store.fast.protocol import ReplyError, pack_command
from rotator.store.scripts import Script

__all__ = ["FastRedis", "ReplyError"]


class FastRedis:
    """Pipelined client of one server; `connect(cluster=True)` returns the cluster flavour."""

    def __init__(self, node: Node) -> None:
        self._node = node

    @classmethod
    async def connect(
        cls, url: str | StoreAddress, *, timeout_ms: int, cluster: bool = False
    ) -> FastRedis:
        """Connect to `url` (for a cluster: any one node). Raises StoreUnavailable when it
        cannot be reached or its certificate is refused, ReplyError when it refuses
        AUTH/SELECT, ValueError for a bad URL (read by rotator/store/address.py)."""
        endpoint = parse_url(url)
        timeout_s = timeout_ms / 1000
        if cluster:
            from rotator.store.fast.cluster import ClusterFastRedis

            return await ClusterFastRedis.open(endpoint, timeout_s)
        node = Node(endpoint, timeout_s)
        await node.start()
        return cls(node)

    @classmethod
    def unconnected(
        cls, url: str | StoreAddress, *, timeout_ms: int, cluster: bool = False
    ) -> FastRedis:
        """A client that connects on its first call: for a process that starts while Redis
        is down, so it answers 503 meanwhile and recovers by itself instead of exiting."""
        endpoint = parse_url(url)
        timeout_s = timeout_ms / 1000
        if cluster:
            from rotator.store.fast.cluster import ClusterFastRedis

            # every slot points at the seed until its MOVED answers schedule a map refresh
            return ClusterFastRedis(endpoint, timeout_s)
        return cls(Node(endpoint, timeout_s))

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        node = self._node
        conn = node.conn or await node.reconnect()
        reply = await conn.request(pack_command(("EVALSHA", script.sha, len(keys), *keys, *args)))
        if reply.__class__ is ReplyError:
            if not reply.message.startswith("NOSCRIPT"):
                raise _error(reply)
            conn = node.conn or await node.reconnect()
            reply = await conn.request(
                pack_command(("EVAL", script.source, len(keys), *keys, *args))
            )
            if reply.__class__ is ReplyError:
                raise _error(reply)
        return reply

    async def execute(self, *args: Any) -> Any:
        node = self._node
        conn = node.conn or await node.reconnect()
        reply = await conn.request(pack_command(args))
        if reply.__class__ is ReplyError:
            raise _error(reply)
        return reply

    async def close(self) -> None:
        await self._node.close()

    @property
    def connect_attempts(self) -> int:
        """How many connects were tried so far (observability; fail-fast tests)."""
        return self._node.connect_attempts


def _error(reply: ReplyError) -> Exception:
    """A store refusing to serve (OOM, READONLY, BUSY …: rotator/store/refusals.py) is
    unavailable, answered 503 like an outage; any other error reply is the caller's bug."""
    code = refusals.code_of_reply(reply.message)
    if code is None:
        return reply
    refused = refusals.StoreRefused(code)
    refused.__cause__ = reply
    return refused
