"""The event pump: consumer groups, batching, ack after enqueue, and recovery from a crash."""

from __future__ import annotations

import dataclasses

import pytest
from arq.jobs import Job, JobStatus
from redis.exceptions import ResponseError

from rotator.store import keys
from rotator.store.events import GROUP, EventStreams
from tests.integration.webhook_support import (
    FAST,
    deliver_all,
    log_of,
    pump,
    queue_fixture,  # noqa: F401  (the `queue` fixture)
    record_event,
    verify_signature,
    webhook_tenant,
    worker,
)
from tests.lua import seed
from workers.pump import arq_view, enqueue_batch, jobs_for


async def queued(redis) -> list[str]:
    return [str(job.job_id) for job in await arq_view(redis).queued_jobs()]


async def pending(redis, tenant) -> int:
    return (await redis.xpending(keys.events(tenant), GROUP))["pending"]


async def test_one_job_per_event_in_batches_then_acked(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    ids = [await record_event(redis, t.tenant, "key.delivered", {"n": i}) for i in range(250)]

    moved = await pump(redis).pump_once()

    assert moved == 250
    assert sorted(await queued(redis)) == sorted(ids)  # arq job id = event id
    assert await pending(redis, t.tenant) == 0
    assert await pump(redis).pump_once() == 0  # nothing new: nothing enqueued twice


async def test_only_tenants_with_a_webhook_are_pumped(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    other = await seed.tenant(redis)  # no webhook, not in kr:webhook_tenants
    await record_event(redis, other.tenant, "key.rotated", {})
    mine = await record_event(redis, t.tenant, "key.rotated", {})

    await pump(redis).pump_once()

    assert await queued(redis) == [mine]
    assert await redis.xinfo_groups(keys.events(other.tenant)) == []


async def test_events_recorded_before_the_group_existed_are_delivered(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await redis.srem(keys.WEBHOOK_TENANTS, t.tenant)
    early = await record_event(redis, t.tenant, "key.rotated", {})
    p = pump(redis)
    await p.pump_once()  # not registered yet: nothing read, no group
    await redis.sadd(keys.WEBHOOK_TENANTS, t.tenant)
    await p.pump_once()
    assert await queued(redis) == [early]


async def test_two_pumps_share_the_stream_without_duplicates(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    ids = [await record_event(redis, t.tenant, "key.delivered", {"n": i}) for i in range(300)]
    small = dataclasses.replace(FAST, pump_batch=50, pump_max_batches_per_tenant=1)
    a, b = pump(redis, small, "pump-a"), pump(redis, small, "pump-b")

    moved = 0
    while moved < 300:
        moved += await a.pump_once() + await b.pump_once()

    assert moved == 300
    assert sorted(await queued(redis)) == sorted(ids)
    consumers = {
        c["name"].decode(): c for c in await redis.xinfo_consumers(keys.events(t.tenant), GROUP)
    }
    assert set(consumers) == {"pump-a", "pump-b"}


async def test_duplicate_enqueue_collapses_on_the_event_id(settings, redis, receiver):
    job = ("evt_x_1-0", ("x", "evt_x_1-0", "key.rotated", b"{}"))
    assert await enqueue_batch(redis, [job]) == 1
    assert await enqueue_batch(redis, [job]) == 0  # queued: collapses
    async with worker(settings) as w:
        await w.async_run()  # tenant x does not exist: the job ends "failed", unlogged
    assert await Job("evt_x_1-0", arq_view(redis)).status() == JobStatus.complete
    assert await enqueue_batch(redis, [job]) == 0  # finished, result kept: collapses too
    assert await queued(redis) == []


async def test_pump_killed_after_reading_before_enqueue(settings, redis, receiver):
    """Entries read by a pump that died stay pending; another pump reclaims and delivers them."""
    t, secret = await webhook_tenant(redis, settings.keyring, receiver.url)
    event_id = await record_event(redis, t.tenant, "key.rotated", {"service": "s"})
    streams = EventStreams(redis)
    await streams.ensure_group(t.tenant)
    read = await streams.read_new(t.tenant, "dead-pump", 100)  # ...and then it died
    assert len(read) == 1
    assert await pending(redis, t.tenant) == 1

    # FAST reclaims entries idle for 0 ms; production waits claim_idle_ms (30 s)
    await deliver_all(settings, redis)

    (request,) = receiver.received
    assert request.headers["webhook-id"] == event_id
    assert verify_signature(secret, request.headers, request.body)
    assert await pending(redis, t.tenant) == 0


async def test_pump_killed_after_enqueue_before_ack(settings, redis, receiver):
    """Reclaimed entries are enqueued again, collapse on their job ids: delivered once."""
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    ids = [await record_event(redis, t.tenant, "key.rotated", {"n": i}) for i in range(3)]
    streams = EventStreams(redis)
    await streams.ensure_group(t.tenant)
    entries = await streams.read_new(t.tenant, "dying-pump", 100)
    jobs, _ = jobs_for(t.tenant, entries)
    assert await enqueue_batch(redis, jobs) == 3  # ...then it died

    assert await pump(redis).pump_once() == 3  # reclaimed and acked; enqueue collapsed
    assert sorted(await queued(redis)) == sorted(ids)
    async with worker(settings) as w:
        await w.async_run()
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(ids)
    assert await pending(redis, t.tenant) == 0


@pytest.mark.backends("single", "cluster")
async def test_malformed_entries_are_logged_as_failed_and_acked(settings, redis, queue, receiver):
    """An entry no job can deliver is never dropped silently: the tenant sees it as a failed
    delivery in GET /v1/webhooks/deliveries, with its event id and why."""
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    stream = keys.events(t.tenant)
    no_type = (await redis.xadd(stream, {"data": "{}"})).decode()
    not_object = (await redis.xadd(stream, {"type": "key.rotated", "data": "[1, 2]"})).decode()
    # what an earlier next_key.lua wrote for a slug stored with a trailing newline
    raw_newline = (
        await redis.xadd(stream, {"type": "key.delivered", "data": '{"service":"s\n","key_id":1}'})
    ).decode()
    good = await record_event(redis, t.tenant, "key.rotated", {})

    await pump(redis, queue=queue).pump_once()

    assert await queued(queue) == [good]
    assert await pending(redis, t.tenant) == 0
    logged = {e["event_id"]: e for e in await log_of(redis, t.tenant)}
    assert set(logged) == {f"evt_{t.tenant}_{i}" for i in (no_type, not_object, raw_newline)}
    for entry in logged.values():
        assert entry["outcome"] == "failed" and entry["attempts"] == 0
        assert entry["error"].startswith("malformed event: ")
    assert logged[f"evt_{t.tenant}_{no_type}"]["type"] == "unknown"
    assert logged[f"evt_{t.tenant}_{not_object}"]["type"] == "key.rotated"
    assert "not a JSON object" in logged[f"evt_{t.tenant}_{raw_newline}"]["error"]


async def test_entry_trimmed_while_pending_is_logged_as_failed_and_acked(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    streams = EventStreams(redis)
    await streams.ensure_group(t.tenant)
    gone = await record_event(redis, t.tenant, "key.rotated", {})
    await streams.read_new(t.tenant, "dead-pump", 10)
    await redis.xdel(keys.events(t.tenant), gone.rsplit("_", 1)[1])  # as MAXLEN ~ would

    await pump(redis).pump_once()

    assert await queued(redis) == []
    assert await pending(redis, t.tenant) == 0
    [entry] = await log_of(redis, t.tenant)
    assert (entry["event_id"], entry["outcome"]) == (gone, "failed")
    assert "trimmed" in entry["error"]


async def test_one_broken_tenant_does_not_stop_the_others(settings, redis, receiver):
    broken, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await redis.set(keys.events(broken.tenant), "not a stream")
    fine, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    event_id = await record_event(redis, fine.tenant, "key.rotated", {})

    assert await pump(redis).pump_once() == 1
    assert await queued(redis) == [event_id]


async def test_store_down_fails_the_pass(settings, redis, receiver):
    broken, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await redis.set(keys.events(broken.tenant), "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await pump(redis).pump_once()  # every tenant failed: the loop pauses and retries


async def test_deleted_stream_is_recreated(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    p = pump(redis)
    await p.pump_once()
    await redis.delete(keys.events(t.tenant))  # the group goes with it
    await p.pump_once()  # NOGROUP: forgets the group
    later = await record_event(redis, t.tenant, "key.rotated", {})
    await p.pump_once()
    await p.pump_once()
    assert later in await queued(redis)


async def test_idle_consumers_of_past_workers_are_pruned(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    streams = EventStreams(redis)
    await streams.ensure_group(t.tenant)
    await record_event(redis, t.tenant, "key.rotated", {})
    await streams.read_new(t.tenant, "past-worker", 10)  # holds one pending entry
    await redis.xgroup_createconsumer(keys.events(t.tenant), GROUP, "idle-worker")

    removed = await streams.prune_consumers(t.tenant, idle_ms=-1, keep="me")

    assert removed == 1  # the one with a pending entry is kept until it is reclaimed
    names = [c["name"] for c in await redis.xinfo_consumers(keys.events(t.tenant), GROUP)]
    assert names == [b"past-worker"]
    assert (await log_of(redis, t.tenant)) == []
