"""A withdrawn event is never POSTed: delivery_refund.lua took it back (its delivery failed to
decrypt) after a pump had already read, and perhaps queued, it. Driven by hand: pump passes,
then the queued jobs run to completion in a burst worker."""

from __future__ import annotations

import json

import pytest

from rotator.domain.iprange import ip_hex
from rotator.store import keys
from rotator.store.delivery import DeliveryStore
from rotator.store.events import EventStreams
from tests.integration.webhook_support import (
    log_of,
    pump,
    queue_fixture,  # noqa: F401  (the `queue` fixture)
    webhook_tenant,
    worker,
)
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")
EVENTS = ",key.delivered,service.limit_reached,key.decrypt_failed,"


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


async def withdrawn_ids(redis, tenant) -> list[str]:
    return [f"evt_{tenant}_{m.decode()}" for m in await redis.zrange(keys.void(tenant), 0, -1)]


async def test_events_queued_before_the_refund_are_not_posted(
    settings, redis, queue, receiver, store
):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url, events=EVENTS)
    await seed.service(redis, t, "s", policy="usage", max_daily=2)
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    await store.next_key(t.client, "s", IP)
    failed = await store.next_key(t.client, "s", IP)  # reaches the limit, then fails to decrypt
    assert await pump(redis, queue=queue).pump_once() == 3  # queued: 2 key.delivered, 1 limit

    await store.refund(failed)  # the pump was faster than the API process's decrypt
    assert await pump(redis, queue=queue).pump_once() == 1  # key.decrypt_failed
    async with worker(settings) as w:
        await w.async_run()

    withdrawn = await withdrawn_ids(redis, t.tenant)
    assert len(withdrawn) == 2  # the failed delivery's key.delivered and service.limit_reached
    posted = [json.loads(r.body) for r in receiver.received]
    assert sorted(p["type"] for p in posted) == ["key.decrypt_failed", "key.delivered"]
    assert [p["data"]["usage_today"] for p in posted if p["type"] == "key.delivered"] == [1]
    logged = await log_of(redis, t.tenant)
    assert {e["event_id"] for e in logged}.isdisjoint(withdrawn)
    assert {e["outcome"] for e in logged} == {"delivered"} and len(logged) == 2


async def test_an_entry_read_by_a_pump_that_died_is_not_logged_as_lost(
    settings, redis, queue, receiver, store
):
    """Read (pending), taken back, then reclaimed by another pump as a deleted entry: it was
    withdrawn on purpose, so it is acknowledged without a failed delivery in the log."""
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url, events=EVENTS)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    streams = EventStreams(redis)
    await streams.ensure_group(t.tenant)
    failed = await store.next_key(t.client, "s", IP)
    assert len(await streams.read_new(t.tenant, "dead-pump", 10)) == 1  # ...then it died
    await store.refund(failed)

    await pump(redis, queue=queue).pump_once()  # reclaims the deleted entry; decrypt_failed
    async with worker(settings) as w:
        await w.async_run()

    assert [json.loads(r.body)["type"] for r in receiver.received] == ["key.decrypt_failed"]
    assert [e["type"] for e in await log_of(redis, t.tenant)] == ["key.decrypt_failed"]
    assert (await redis.xpending(keys.events(t.tenant), "webhooks"))["pending"] == 0
