"""Deleting a tenant: its tokens stop at once, its keys go in batches, resumably.

1. `begin`: the tenant is recorded in kr:deleting_tenants first (a crash after that leaves
   a trace to resume from); then one tenant_update.lua write empties its admin and client
   token hashes, in the tenant hash and in every service's copy, atomically: from that
   instant its admin token gets 401 and its client and app tokens 403. Its console
   sessions end, its tenant hash goes (it is invisible: 404, not listed) and so do its
   memberships of the global registries and the index entries of its imported tokens.
2. `Deletion.step`: one SCAN of the tenant's keys (`{t:T}:*`) on the node that holds its
   slot, and an UNLINK of what it found (big values are freed in the background). Only the
   SCAN cursor is kept between steps: an interrupted deletion is resumed by starting
   again, which finds whatever is left.
3. Done when a SCAN pass completes. The tenant stays in kr:deleting_tenants until a pass
   that began DELETION_RECHECK_AFTER_MS after step 1 completes: a request authenticated just
   before step 1 may still write a key after it (a console page touching its session, a
   webhook job logging an attempt), and the worker's later pass removes it.

The API runs a few steps within the request (a small tenant is gone before the answer),
`rotator tenant delete` runs them all, and the worker (workers/deletions.py) finishes and
re-checks every deletion in kr:deleting_tenants.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from redis.asyncio.cluster import RedisCluster

from rotator.domain import tokens
from rotator.domain.errors import InvalidField, NotFound
from rotator.domain.records import TenantDeletion
from rotator.store import keys, token_index
from rotator.store.connection import Durability, Redis, as_str
from rotator.store.sessions import revoke_tenant_sessions
from rotator.store.tenants import write_fields
from rotator.tuning import DELETION_RECHECK_AFTER_MS, DELETION_REQUEST_STEPS, DELETION_SCAN_COUNT

_BLANK = {"admin": "", "client": "", "client_held": "", "suspended": "1"}
"""What the first step writes: no token hash left to match (tenant_update.lua copies the
empty client hash into every service, which next_key.lua refuses)."""


class Pending(msgspec.Struct, frozen=True):
    tenant: str
    began_ms: int


async def pending(redis: Redis) -> list[Pending]:
    """The deletions begun and not yet final, oldest first."""
    rows = await redis.zrange(keys.DELETING_TENANTS, 0, -1, withscores=True)
    return [Pending(tenant=as_str(t) or "", began_ms=int(score)) for t, score in rows]


async def _began_ms(redis: Redis, tenant: str) -> int | None:
    score = await redis.zscore(keys.DELETING_TENANTS, tenant)
    return None if score is None else int(score)


async def begin(redis: Redis, durability: Durability, tenant: str, *, now_ms: int) -> int:
    """Step 1 (idempotent: a resumed deletion runs it again); returns when it first began."""
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(keys.DELETING_TENANTS, {tenant: now_ms}, nx=True)  # NX: the first attempt's time
    await durability.execute(pipe)
    imported = await token_index.of_tenant(redis, tenant)  # read before the blanking empties it
    with contextlib.suppress(NotFound):  # the tenant hash is gone: a resumed deletion
        await write_fields(redis, durability, tenant, dict(_BLANK))
    # after: an entry may outlive its token, never the reverse; all at once, and with no
    # put-back (release's): the apps still hold their tokens until they are deleted below
    await token_index.release_all(redis, durability, imported)
    await revoke_tenant_sessions(redis, tenant)
    pipe = redis.pipeline(transaction=False)
    pipe.delete(keys.tenant(tenant))
    pipe.srem(keys.TENANTS, tenant)
    pipe.srem(keys.WEBHOOK_TENANTS, tenant)
    await durability.execute(pipe)
    members = [
        m async for m in redis.sscan_iter(keys.TIME_SERVICES, match=tenant + ":*", count=500)
    ]
    if members:
        await redis.srem(keys.TIME_SERVICES, *members)
    # race point: `rotator run` may name a new demo between the GET and the DEL only after
    # finding this tenant gone, which it is by now: the DEL then removes the old name only
    if as_str(await redis.get(keys.DEMO_TENANT)) == tenant:
        await redis.delete(keys.DEMO_TENANT)
    began = await _began_ms(redis, tenant)
    return now_ms if began is None else began


async def _scan(redis: Redis, tenant: str, cursor: int) -> tuple[int, list[bytes]]:
    """One SCAN of the tenant's keys: on a cluster, on the one node that holds its slot."""
    pattern = keys.every_key_of(tenant)
    if isinstance(redis, RedisCluster):
        await redis.initialize()  # a no-op once the slot map is loaded
        node = redis.get_node_from_key(keys.tenant(tenant))
        cursors, found = await redis.scan(
            cursor, match=pattern, count=DELETION_SCAN_COUNT, target_nodes=node
        )
        return int(cursors[node.name]), found
    next_cursor, found = await redis.scan(cursor, match=pattern, count=DELETION_SCAN_COUNT)
    return int(next_cursor), found


@dataclass(eq=False)
class Deletion:
    """Steps 2 and 3 for one tenant whose first step has run."""

    redis: Redis
    durability: Durability
    tenant: str
    began_ms: int
    cursor: int = field(default=0, init=False)
    removed: int = field(default=0, init=False)
    """Keys this object unlinked."""
    done: bool = field(default=False, init=False)
    """A SCAN pass has completed: no key of the tenant was left when it began."""
    pass_began_ms: int | None = field(default=None, init=False)

    async def step(self) -> int:
        """One SCAN and the UNLINK of what it found; returns how many keys went."""
        cursor, found = await _scan(self.redis, self.tenant, self.cursor)
        removed = 0
        if found:
            pipe = self.redis.pipeline(transaction=False)
            pipe.unlink(*found)  # one slot: one command, fsync-acknowledged like every write
            (removed,) = await self.durability.execute(pipe)
        self.removed += removed
        self.cursor = cursor
        self.done = cursor == 0
        return removed

    async def run(
        self,
        *,
        now_ms: int,
        max_steps: int | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[Deletion], None] | None = None,
    ) -> TenantDeletion:
        """Steps until a pass completes (or `max_steps`, or `stop()` says so); a completed
        pass that began DELETION_RECHECK_AFTER_MS after step 1 ends the deletion (the tenant leaves
        the registry)."""
        if self.cursor == 0 and self.pass_began_ms is None:
            self.pass_began_ms = now_ms
        steps = 0
        while not self.done and (max_steps is None or steps < max_steps):
            if stop is not None and stop():
                break
            await self.step()
            steps += 1
            if progress is not None:
                progress(self)
        assert self.pass_began_ms is not None
        if self.done and self.pass_began_ms - self.began_ms >= DELETION_RECHECK_AFTER_MS:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(keys.DELETING_TENANTS, self.tenant)
            await self.durability.execute(pipe)
        return TenantDeletion(
            id=self.tenant, state="deleted" if self.done else "deleting", keys_removed=self.removed
        )


async def delete_tenant(
    redis: Redis,
    durability: Durability,
    tenant: str,
    *,
    confirm: str,
    now_ms: int,
    max_steps: int | None = DELETION_REQUEST_STEPS,
    progress: Callable[[Deletion], None] | None = None,
) -> TenantDeletion:
    """Delete a tenant (DELETE /v1/admin/tenants/{id}?confirm={id}): `confirm` must repeat
    its id. Its tokens stop before this returns; up to `max_steps` SCAN steps run here (None:
    all of them), the worker does the rest. A deletion already under way is resumed."""
    if confirm != tenant:
        raise InvalidField("confirm", "must repeat the tenant's id, to confirm the deletion")
    if not tokens.is_tenant_id(tenant):  # never a glob character in the SCAN pattern
        raise NotFound("tenant not found")
    resumed = await _began_ms(redis, tenant)
    if resumed is None and not await redis.exists(keys.tenant(tenant)):
        raise NotFound("tenant not found")
    began_ms = await begin(redis, durability, tenant, now_ms=now_ms)
    deletion = Deletion(redis, durability, tenant, began_ms)
    return await deletion.run(now_ms=now_ms, max_steps=max_steps, progress=progress)


async def finish(
    redis: Redis,
    durability: Durability,
    deletion: Pending,
    *,
    now_ms: int,
    stop: Callable[[], bool] | None = None,
) -> TenantDeletion:
    """Take a recorded deletion up from step 1, whatever step it was interrupted at (the
    worker's job; `stop()` ends it early, to be resumed by the next run)."""
    began = await begin(redis, durability, deletion.tenant, now_ms=deletion.began_ms)
    return await Deletion(redis, durability, deletion.tenant, began).run(now_ms=now_ms, stop=stop)


async def is_final(redis: Redis, tenant: str) -> bool:
    """Whether no deletion of `tenant` is recorded any more (done and re-checked, or never)."""
    return await _began_ms(redis, tenant) is None
