"""Daily limits in next_key.lua, through its wrapper: which limit refused a request and when
it resets, what is left of the tightest limit, and the once-a-day events (limit reached,
early warning, the current key's own limit moving deliveries on)."""

from __future__ import annotations

import json

import msgspec
import pytest

from rotator.domain import errors
from rotator.domain.clock import DAY_MS, FakeClock, utc_day
from rotator.domain.iprange import ip_hex
from rotator.store import keys
from rotator.store.delivery import DeliveryStore
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")
LIMIT_EVENTS = ",service.limit_warning,service.limit_reached,app.limit_reached,key.rotated,"


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


async def events(redis, t) -> list[tuple[str, dict]]:
    return [
        (f[b"type"].decode(), json.loads(f[b"data"]))
        for _, f in await redis.xrange(keys.events(t.tenant))
    ]


async def refused(store, token, slug="s") -> errors.DailyLimitReached:
    with pytest.raises(errors.DailyLimitReached) as caught:
        await store.next_key(token, slug, IP)
    return caught.value


async def test_which_limit_refused_and_when_it_resets(store, redis, settings, clock: FakeClock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage", max_daily=3)
    await seed.key(redis, settings.keyring, t, "s", "sk-a", max_daily=2)
    app = await seed.app(redis, t, max_daily=1)
    await store.next_key(app, "s", IP)
    assert (await refused(store, app)).limit == "app"
    await store.next_key(t.client, "s", IP)
    assert (await refused(store, t.client)).limit == "key"  # the only key is at its limit
    await seed.key(redis, settings.keyring, t, "s", "sk-b")
    await store.next_key(t.client, "s", IP)
    assert (await refused(store, t.client)).limit == "service"  # the service is checked first
    # Retry-After: to the end of the UTC day, rounded up
    midnight = (utc_day(clock()) + 1) * DAY_MS
    clock.now_ms = midnight - 90_500
    assert (await refused(store, t.client)).retry_after_s == 91
    clock.now_ms = midnight - 1
    assert (await refused(store, t.client)).retry_after_s == 1
    clock.now_ms = midnight
    assert (await store.next_key(t.client, "s", IP)).usage_today == 1


async def test_the_tightest_limit_and_what_is_left_of_it(store, redis, settings, clock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage", max_daily=10)
    await seed.service(redis, t, "free", policy="usage")
    for slug in ("s", "free"):
        await seed.key(redis, settings.keyring, t, slug, "sk-a")
    app = await seed.app(redis, t, max_daily=4)
    unlimited_app = await seed.app(redis, t)

    first = await store.next_key(t.client, "s", IP)
    assert (first.quota, first.remaining, first.reset_s) == (10, 9, 12 * 3600)
    assert first.app_max_daily_requests is msgspec.UNSET  # a client token has no app limit
    for n in (1, 2):  # the app has 4 left of its own, the service 8 then 7: the app is tighter
        d = await store.next_key(app, "s", IP)
        assert (d.quota, d.remaining, d.app_max_daily_requests) == (4, 4 - n, 4)
    for _ in range(4):
        await store.next_key(unlimited_app, "s", IP)
    d = await store.next_key(app, "s", IP)  # service: 10 - 8 = 2 left after it, app: 1
    assert (d.quota, d.remaining) == (4, 1)
    d = await store.next_key(unlimited_app, "s", IP)  # the 9th of the service's 10
    assert (d.quota, d.remaining, d.app_max_daily_requests) == (10, 1, None)
    none = await store.next_key(unlimited_app, "free", IP)
    assert (none.quota, none.remaining, none.reset_s) == (0, 0, 0)  # no limit applies


async def test_limit_reached_once_per_day_and_limit_value(store, redis, settings, clock):
    t = await seed.tenant(redis, events=LIMIT_EVENTS)
    await seed.service(redis, t, "s", policy="usage", max_daily=2)
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    for _ in range(2):
        await store.next_key(t.client, "s", IP)
    for _ in range(3):
        await refused(store, t.client)
    await redis.hset(keys.service(t.tenant, "s"), "max", 3)  # raised: re-armed
    await store.next_key(t.client, "s", IP)
    await refused(store, t.client)
    await redis.hset(keys.service(t.tenant, "s"), "max", 2)  # back: already reported today
    await refused(store, t.client)
    assert await events(redis, t) == [
        ("service.limit_reached", {"service": "s", "scope": "service", "limit": 2}),
        ("service.limit_reached", {"service": "s", "scope": "service", "limit": 3}),
    ]


async def test_limit_reached_is_not_used_up_while_nobody_subscribes(store, redis, settings):
    t = await seed.tenant(redis, events="")
    await seed.service(redis, t, "s", policy="usage", max_daily=1)
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    app = await seed.app(redis, t, max_daily=1)
    await store.next_key(app, "s", IP)
    await refused(store, t.client)
    await refused(store, app)
    assert await events(redis, t) == []
    # the tenant subscribes later that day: the next refused request tells it
    await seed.tenant_fields(redis, t.tenant, events=LIMIT_EVENTS)
    await refused(store, t.client)
    await refused(store, t.client)
    assert await events(redis, t) == [
        ("service.limit_reached", {"service": "s", "scope": "service", "limit": 1}),
    ]


async def test_an_app_at_its_limit_records_app_limit_reached(store, redis, settings):
    t = await seed.tenant(redis, events=LIMIT_EVENTS)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    app = await seed.app(redis, t, max_daily=2)
    await store.next_key(app, "s", IP)
    await store.next_key(app, "s", IP)  # reaches it: recorded now, once
    await refused(store, app)
    await store.next_key(t.client, "s", IP)  # the tenant's client token is not limited
    assert await events(redis, t) == [
        ("app.limit_reached", {"service": "s", "app_id": int(app.app), "limit": 2}),
    ]


async def test_early_warning_once_per_day_and_limit_value(store, redis, settings, clock):
    t = await seed.tenant(redis, events=LIMIT_EVENTS)
    await seed.service(redis, t, "s", policy="usage", max_daily=10, warn_percent=80)
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    counts = [(await store.next_key(t.client, "s", IP)).usage_today for _ in range(9)]
    assert counts == list(range(1, 10))
    data = {"service": "s", "limit": 10, "limit_warning_percent": 80, "usage_today": 8}
    warning = ("service.limit_warning", data)
    assert await events(redis, t) == [warning]  # at 8 of 10, not before, once
    await redis.hset(keys.service(t.tenant, "s"), "max", 11)  # 9 of 11 is past 80%: again
    await store.next_key(t.client, "s", IP)
    assert [d["limit"] for _, d in await events(redis, t)] == [10, 11]

    clock.now_ms = (utc_day(clock()) + 1) * DAY_MS
    await redis.hset(keys.service(t.tenant, "s"), mapping={"warn": "", "max": 10})  # off
    for _ in range(10):
        await store.next_key(t.client, "s", IP)
    assert [e for e, _ in await events(redis, t)] == [
        "service.limit_warning", "service.limit_warning", "service.limit_reached"
    ]  # fmt: skip


@pytest.mark.parametrize("policy", ["manual", "time"])
async def test_current_key_at_its_own_limit_moves_deliveries_on_once_a_day(
    store, redis, settings, clock: FakeClock, policy
):
    t = await seed.tenant(redis, events=LIMIT_EVENTS)
    await seed.service(
        redis, t, "s", policy=policy, ttl_minutes=60 * 24 if policy == "time" else None
    )
    a = await seed.key(redis, settings.keyring, t, "s", "sk-a", max_daily=2)
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b")
    picks = [(await store.next_key(t.client, "s", IP)).key_id for _ in range(5)]
    assert picks == [a, a, b, b, b]
    usage = {"service": "s", "from_key_id": a, "to_key_id": b, "reason": "usage"}
    assert await events(redis, t) == [("key.rotated", usage)]  # once for the day
    clock.now_ms = (utc_day(clock()) + 1) * DAY_MS  # a new day: a is fresh, then moves on again
    picks = [(await store.next_key(t.client, "s", IP)).key_id for _ in range(3)]
    assert picks == [a, a, b]
    assert await events(redis, t) == [("key.rotated", usage)] * 2


async def test_usage_policy_records_no_usage_rotation(store, redis, settings):
    t = await seed.tenant(redis, events=LIMIT_EVENTS)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-a", max_daily=1)
    await seed.key(redis, settings.keyring, t, "s", "sk-b")
    for _ in range(4):
        await store.next_key(t.client, "s", IP)
    assert await events(redis, t) == []
