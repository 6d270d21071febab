"""delivery_refund.lua through DeliveryStore.refund: a delivery whose key then failed to decrypt
uses up nothing (service, app and key counters, the request record, a time key's clock) and
leaves no key.delivered; key.decrypt_failed is recorded once per key per day."""

from __future__ import annotations

import json

import pytest
from arq.constants import expires_extra_ms

from rotator.domain import errors
from rotator.domain.clock import utc_day
from rotator.domain.iprange import ip_hex
from rotator.domain.models import EVENT_TYPES
from rotator.store import keys
from rotator.store.delivery import VOID_TTL_MS, DeliveryStore
from rotator.store.events import EventStreams
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")
ALL_EVENTS = "," + ",".join(EVENT_TYPES) + ","


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


async def types(redis, tenant) -> list[str]:
    return [f[b"type"].decode() for _, f in await redis.xrange(keys.events(tenant))]


async def usage(redis, tenant, clock) -> dict[str, str]:
    raw = await redis.hgetall(keys.usage(tenant, utc_day(clock())))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_a_refund_undoes_the_count_and_takes_key_delivered_back(
    store, redis, settings, clock
):
    t = await seed.tenant(redis, events=ALL_EVENTS)
    await seed.service(redis, t, "s", policy="usage", max_daily=3)
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-a", label="Primary")
    app = await seed.app(redis, t, max_daily=5)

    for token in (t.client, app, t.client):
        delivery = await store.next_key(token, "s", IP)
        assert delivery.usage_today == 1  # the previous failure used up nothing
        await store.refund(delivery)

    assert await usage(redis, t.tenant, clock) == {f"df:{kid}": "3", "sdf:s": "3"}
    assert await types(redis, t.tenant) == ["key.decrypt_failed"]  # once a day per key
    [(_, fields)] = await redis.xrange(keys.events(t.tenant))
    assert json.loads(fields[b"data"]) == {"service": "s", "key_id": kid, "label": "Primary"}
    assert await redis.exists(keys.void(t.tenant)) == 0  # no pump had read anything

    # the quota is whole: three deliveries, then the limit
    assert [(await store.next_key(t.client, "s", IP)).usage_today for _ in range(3)] == [1, 2, 3]
    with pytest.raises(errors.DailyLimitReached):
        await store.next_key(t.client, "s", IP)


async def test_counts_of_other_deliveries_are_kept(store, redis, settings, clock):
    """A refund decrements: deliveries counted before it (or between the two scripts) stay."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    failed = await store.next_key(t.client, "s", IP)
    await store.next_key(t.client, "s", IP)  # a concurrent good delivery
    await store.refund(failed)
    assert await usage(redis, t.tenant, clock) == {
        f"k:{kid}": "1",
        "s:s": "1",
        f"df:{kid}": "1",
        "sdf:s": "1",
    }


async def test_counters_never_go_below_zero(store, redis, settings, clock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    delivery = await store.next_key(t.client, "s", IP)
    await redis.delete(keys.usage(t.tenant, utc_day(clock())))  # the day was wiped meanwhile
    await store.refund(delivery)
    assert await usage(redis, t.tenant, clock) == {f"df:{kid}": "1", "sdf:s": "1"}
    assert await redis.ttl(keys.usage(t.tenant, utc_day(clock()))) > 0  # still expires


@pytest.mark.parametrize(
    ("scope", "event"),
    [("service", "service.limit_reached"), ("app", "app.limit_reached"),
     ("warning", "service.limit_warning")],
)  # fmt: skip
async def test_the_failed_delivery_that_reached_a_limit_leaves_no_limit_event(
    store, redis, settings, clock, scope, event
):
    """It set the once-a-day flag and recorded the event: both are taken back, so the delivery
    that really reaches the limit (or the warning's share of it) records it."""
    t = await seed.tenant(redis, events=f",{event},")
    await seed.service(
        redis, t, "s", policy="usage", max_daily={"service": 2, "warning": 4}.get(scope),
        warn_percent=50 if scope == "warning" else None,
    )  # fmt: skip
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    app = await seed.app(redis, t, max_daily=2 if scope == "app" else None)
    flag = {"service": "lr:s:2", "app": f"lra:{app.app}:2", "warning": "lw:s:4"}[scope]

    await store.next_key(app, "s", IP)
    failed = await store.next_key(app, "s", IP)  # reaches the limit (or 50% of it)...
    assert flag in await usage(redis, t.tenant, clock)
    assert await types(redis, t.tenant) == [event]
    await store.refund(failed)  # ...and fails to decrypt
    assert flag not in await usage(redis, t.tenant, clock)
    assert await types(redis, t.tenant) == []

    assert (await store.next_key(app, "s", IP)).usage_today == 2
    assert await types(redis, t.tenant) == [event]  # recorded by the delivery that got there
    if scope != "warning":
        with pytest.raises(errors.DailyLimitReached):
            await store.next_key(app, "s", IP)
    assert await types(redis, t.tenant) == [event]


async def test_the_failed_delivery_that_moved_on_from_the_current_key_is_taken_back(
    store, redis, settings, clock
):
    """key.rotated (reason usage) and its once-a-day flag: the failed request was the first to
    move on from the current key at its own limit; the next one that does records it."""
    t = await seed.tenant(redis, events=",key.rotated,")
    await seed.service(redis, t, "s", policy="manual")
    a = await seed.key(redis, settings.keyring, t, "s", "sk-a", max_daily=1)
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b")
    assert (await store.next_key(t.client, "s", IP)).key_id == a
    failed = await store.next_key(t.client, "s", IP)
    assert failed.key_id == b and f"ku:{a}" in await usage(redis, t.tenant, clock)
    await store.refund(failed)
    assert f"ku:{a}" not in await usage(redis, t.tenant, clock)
    assert await types(redis, t.tenant) == []
    assert (await store.next_key(t.client, "s", IP)).key_id == b
    [(_, fields)] = await redis.xrange(keys.events(t.tenant))
    assert json.loads(fields[b"data"]) == {
        "service": "s",
        "from_key_id": a,
        "to_key_id": b,
        "reason": "usage",
    }


async def test_a_refunded_request_id_is_forgotten(store, redis, settings, clock):
    """A proxy's retry of a request answered 500 is a new delivery, counted once."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    failed = await store.next_key(t.client, "s", IP, "req-00000001")
    await store.refund(failed)
    assert await redis.exists(keys.request_record(t.tenant, "req-00000001")) == 0
    retry = await store.next_key(t.client, "s", IP, "req-00000001")
    assert retry.usage_today == 1
    assert (await usage(redis, t.tenant, clock))[f"k:{kid}"] == "1"


async def test_a_retry_answered_from_the_request_record_refunds_nothing(
    store, redis, settings, clock
):
    """The retry of an answered request counted nothing: its refund only records the failure."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    await store.next_key(t.client, "s", IP, "req-00000002")  # answered 200
    replay = await store.next_key(t.client, "s", IP, "req-00000002")
    assert await store.refund(replay) == 1
    assert await usage(redis, t.tenant, clock) == {
        f"k:{kid}": "1",
        "s:s": "1",
        f"df:{kid}": "1",
        "sdf:s": "1",
    }
    assert await redis.exists(keys.request_record(t.tenant, "req-00000002")) == 1


async def test_a_time_keys_clock_does_not_start_with_a_failed_delivery(
    store, redis, settings, clock
):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="time", ttl_minutes=10)
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    failed = await store.next_key(t.client, "s", IP)
    await store.refund(failed)
    assert await redis.hget(keys.service(t.tenant, "s"), f"t:{kid}") is None
    clock.advance(minutes=30)
    await store.next_key(t.client, "s", IP)  # its first delivery: the clock starts now
    assert await redis.hget(keys.service(t.tenant, "s"), f"t:{kid}") == str(clock()).encode()


async def test_an_entry_a_pump_has_read_is_marked_withdrawn(store, redis, settings, clock):
    """Race point: a pump read key.delivered between the two scripts (it may be queued)."""
    t = await seed.tenant(redis, events=",key.delivered,")
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    streams = EventStreams(redis)
    await streams.ensure_group(t.tenant)

    first = await store.next_key(t.client, "s", IP)
    second = await store.next_key(t.client, "s", IP)
    [(first_id, _)] = await streams.read_new(t.tenant, "a-pump", 1)  # first's entry only
    third = await store.next_key(t.client, "s", IP)
    await store.refund(first)  # its entry was read: deleted and marked
    await store.refund(third)  # its entry was not: deleted, nothing to mark
    assert second.usage_today == 2

    void = keys.void(t.tenant)
    assert [m.decode() for m in await redis.zrange(void, 0, -1)] == [first_id]
    assert 0 < await redis.pttl(void) <= int(VOID_TTL_MS)
    assert int(VOID_TTL_MS) > expires_extra_ms  # outlives any job queued for the entry
    assert [f[b"type"] for _, f in await redis.xrange(keys.events(t.tenant))] == [b"key.delivered"]


async def test_a_usage_service_whose_failed_key_was_deleted_has_no_active_keys(store, redis, clock):
    """A decrypt failure today (sdf:<slug>), then the broken key deleted: no keys are left
    to rank, and the usage policy must say so rather than fail on an empty HMGET."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    await redis.hset(keys.usage(t.tenant, utc_day(clock())), "sdf:s", 1)
    with pytest.raises(errors.NoActiveKeys):
        await store.next_key(t.client, "s", IP)
