"""The one call path of every script, on every client: a wrapper builds a `Call` (its
script, KEYS, ARGV and reply decoder) and `run` sends it through any `ScriptClient`.

Three clients implement `evalsha`: FastRedis (the hot path: pipelined, 3x cheaper per call
than redis-py), `Plain` (a redis-py client, single node or cluster) and `Durable` (a
management write: the script, then WAITAOF on the same connection, so it is acknowledged
once on disk; the audit record of the write in progress goes in the same script,
rotator/store/scripts/audit.py). NOSCRIPT (a restarted server, a flushed script cache) is
answered once per client by resending the source. `run_many` sends several calls in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from redis.exceptions import NoScriptError

from rotator.store.connection import Durability, Redis
from rotator.store.scripts import Script
from rotator.store.scripts import audit as audit_scripts

T = TypeVar("T")


class Call(NamedTuple, Generic[T]):
    """One script call as its wrapper laid it out (a NamedTuple: built on every delivery)."""

    script: Script
    keys: Sequence[str]
    args: Sequence[Any]
    decode: Callable[[Any], T]


class ScriptClient(Protocol):
    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run `script` (by SHA; its source once on NOSCRIPT); the raw reply."""
        ...


async def run(client: ScriptClient, call: Call[T]) -> T:
    """Send one call through `client`; its decoded reply."""
    return call.decode(await client.evalsha(call.script, call.keys, call.args))


class Plain:
    """A redis-py client (plain or cluster) as a ScriptClient: reads and writes that need no
    fsync acknowledgement (sessions, the delivery log, the sweep, backups)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            return await self.redis.eval(script.source, len(keys), *keys, *args)  # type: ignore[misc]

    async def run_many(self, calls: Sequence[Call[T]]) -> list[T]:
        """Calls pipelined in one round trip (each may be on its own slot). Sent as EVAL with
        the source: redis-py's cluster pipeline refuses EVALSHA, and EVAL never answers
        NOSCRIPT; for the rare listings that batch, the source's bytes cost nothing."""
        pipe = self.redis.pipeline(transaction=False)
        for call in calls:
            pipe.eval(call.script.source, len(call.keys), *call.keys, *call.args)
        return [call.decode(reply) for call, reply in zip(calls, await pipe.execute(), strict=True)]


class Durable:
    """A management write as a ScriptClient: the script, then WAITAOF on its connection
    (rotator/store/connection.Durability), so the write is acknowledged only once on disk.

    `before` queues commands (idempotent ones) on the same pipeline ahead of the script."""

    def __init__(
        self,
        redis: Redis,
        durability: Durability,
        before: Callable[[Any], None] | None = None,
    ) -> None:
        self.redis = redis
        self.durability = durability
        self.before = before

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # the audit record of the write in progress rides in its first script on the tenant's
        # slot (rotator/store/scripts/audit.py): appended iff that script changes something
        audited = audit_scripts.audited(script, keys, args)
        if audited is None:
            return (await self._execute([(script, keys, args)]))[-1]
        script, keys, args, pending = audited
        return audit_scripts.unwrap(pending, (await self._execute([(script, keys, args)]))[-1])

    async def run_many(self, calls: Sequence[Call[T]]) -> list[T]:
        """Calls in one durable pipeline (one WAITAOF per node after them all)."""
        replies = await self._execute([(c.script, c.keys, c.args) for c in calls])
        replies = replies[len(replies) - len(calls) :]
        return [call.decode(reply) for call, reply in zip(calls, replies, strict=True)]

    async def _execute(
        self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        # EVAL with the source, not EVALSHA: redis-py's cluster pipeline refuses EVALSHA, EVAL
        # never answers NOSCRIPT, and management writes are rare
        pipe = self.redis.pipeline(transaction=False)
        if self.before is not None:
            self.before(pipe)
        for script, keys, args in calls:
            pipe.eval(script.source, len(keys), *keys, *args)
        return await self.durability.execute(pipe)
