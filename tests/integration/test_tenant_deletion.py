"""Deleting a big tenant: tokens stop at once, the keys go in the background, and a deletion
interrupted at any step is finished by the worker (rotator/store/tenant_deletion.py)."""

from __future__ import annotations

import pytest

from rotator.domain.clock import FakeClock
from rotator.store import keys, tenant_deletion
from rotator.store.connection import Durability
from tests.conftest import T0_MS
from tests.integration.management import (
    OPERATOR,
    deliver,
    new_key,
    new_service,
    new_tenant,
)
from tests.integration.webhook_support import FAST
from workers.deletions import finish_tenant_deletions

pytestmark = pytest.mark.backends("single", "cluster")

MANY = 25_000
"""More keys than the DELETE request removes itself (REQUEST_STEPS scans of SCAN_COUNT)."""


async def fill(redis, tenant: str, count: int = MANY) -> None:
    """`count` demo-throttle keys (one per client address): what a busy demo tenant holds."""
    for start in range(0, count, 5000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(count, start + 5000)):
            pipe.set(keys.gcra(tenant, f"{i:032x}"), T0_MS)
        await pipe.execute()


async def count_keys(redis, tenant: str) -> int:
    return len([k async for k in redis.scan_iter(match=keys.every_key_of(tenant), count=5000)])


def worker(settings, redis, clock) -> dict:
    return {"settings": settings, "config": FAST, "data": redis, "clock": clock}


async def test_a_big_tenant_is_deleted_in_the_background(client, redis, settings, clock):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    await fill(redis, t.id)
    total = await count_keys(redis, t.id) - 1  # the tenant hash goes in the first step

    r = await client.delete(f"/v1/admin/tenants/{t.id}", params={"confirm": t.id},
                            headers=OPERATOR)  # fmt: skip
    assert r.status_code == 202, r.text
    first = r.json()
    assert first["state"] == "deleting" and 0 < first["keys_removed"] < total
    # before the rest is gone, the tenant is already unusable and invisible
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 401
    assert (await deliver(client, t.client_token)).status_code == 403
    assert (await client.get(f"/v1/admin/tenants/{t.id}", headers=OPERATOR)).status_code == 404
    assert (await client.get("/v1/admin/tenants", headers=OPERATOR)).json() == []
    assert [p.tenant for p in await tenant_deletion.pending(redis)] == [t.id]

    ctx = worker(settings, redis, clock)
    assert await finish_tenant_deletions(ctx) == total - first["keys_removed"]
    assert await count_keys(redis, t.id) == 0
    # a request authenticated just before the deletion may still write a key: the deletion
    # stays recorded until a pass a minute later, which removes it
    await redis.hset(keys.session(t.id, "late"), "seen_ms", T0_MS)
    assert not await tenant_deletion.is_final(redis, t.id)
    clock.advance(s=30)
    assert await finish_tenant_deletions(ctx) == 1
    assert not await tenant_deletion.is_final(redis, t.id)  # too early to be sure
    await redis.rpush(keys.deliveries(t.id), "{}")  # a webhook job logging an attempt
    clock.advance(s=30)
    assert await finish_tenant_deletions(ctx) == 1
    assert await count_keys(redis, t.id) == 0
    assert await tenant_deletion.is_final(redis, t.id)
    assert await finish_tenant_deletions(ctx) == 0  # nothing left to do
    r = await client.delete(f"/v1/admin/tenants/{t.id}", params={"confirm": t.id},
                            headers=OPERATOR)  # fmt: skip
    assert r.status_code == 404


async def test_delete_again_resumes_a_deletion_under_way(client, redis):
    t = await new_tenant(client)
    await fill(redis, t.id)
    total = await count_keys(redis, t.id) - 1  # the tenant hash goes in the first step
    removed = 0
    for _ in range(5):
        r = await client.delete(f"/v1/admin/tenants/{t.id}", params={"confirm": t.id},
                                headers=OPERATOR)  # fmt: skip
        removed += r.json()["keys_removed"]
        if r.status_code == 200:
            break
        assert r.status_code == 202
    assert r.json()["state"] == "deleted" and removed == total
    assert await count_keys(redis, t.id) == 0


async def test_an_interrupted_deletion_is_finished_from_where_it_stopped(
    client, redis, settings, clock
):
    """Driven step by step: a deletion that dies after some UNLINKs leaves the rest, which a
    fresh start (the worker) finds and removes; nothing is removed twice or left over."""
    t = await new_tenant(client)
    await new_service(client, t)
    await fill(redis, t.id, 8000)
    total = await count_keys(redis, t.id)
    durability = Durability()
    began = await tenant_deletion.begin(redis, durability, t.id, now_ms=clock())
    assert began == clock()
    interrupted = tenant_deletion.Deletion(redis, durability, t.id, began)
    for _ in range(3):
        await interrupted.step()
    assert 0 < interrupted.removed < total and not interrupted.done
    assert await count_keys(redis, t.id) == total - interrupted.removed - 1  # tenant hash gone
    # the process dies here; the worker takes it up
    removed = await finish_tenant_deletions(worker(settings, redis, clock))
    assert interrupted.removed + removed == total - 1
    assert await count_keys(redis, t.id) == 0


async def test_a_deletion_interrupted_before_its_first_step_still_revokes_everything(
    client, redis, settings, clock
):
    """Crash right after the deletion was recorded: the tenant is still whole; the worker
    runs the first step (tokens) before removing anything."""
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    await redis.zadd(keys.DELETING_TENANTS, {t.id: clock()})
    assert (await deliver(client, t.client_token)).status_code == 200
    later = FakeClock(clock() + 120_000)
    await finish_tenant_deletions(worker(settings, redis, later))
    assert await count_keys(redis, t.id) == 0
    assert not await redis.sismember(keys.TENANTS, t.id)
    assert (await deliver(client, t.client_token)).status_code == 403
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 401
    assert await tenant_deletion.is_final(redis, t.id)
