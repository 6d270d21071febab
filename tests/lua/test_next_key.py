"""next_key.lua on a real Valkey, through its one wrapper, with an injected clock."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from rotator.domain import errors
from rotator.domain.clock import DAY_MS, FakeClock, utc_day
from rotator.domain.iprange import ip_hex
from rotator.store import keys, services, tenants
from rotator.store.connection import Durability
from rotator.store.delivery import DeliveryStore
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


async def rotate(redis, tenant, slug, now_ms):
    return await services.rotate(
        redis, Durability(), tenant, slug, now_ms=now_ms, events_maxlen=1000
    )


async def events(redis, tenant):
    return [
        (f[b"type"].decode(), json.loads(f[b"data"]))
        for _, f in await redis.xrange(keys.events(tenant))
    ]


async def test_delivers_and_counts(store, redis, settings, clock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "openai", policy="usage", max_daily=100)
    kid = await seed.key(redis, settings.keyring, t, "openai", "sk-one", label="Primary")

    first = await store.next_key(t.client, "openai", IP)
    second = await store.next_key(t.client, "openai", IP)

    assert (first.key_id, first.label, first.policy) == (kid, "Primary", "usage")
    assert first.max_daily_requests == 100
    assert (first.usage_today, second.usage_today) == (1, 2)
    use = keys.usage(t.tenant, utc_day(clock()))
    assert await redis.hget(use, f"k:{kid}") == b"2"
    assert await redis.hget(use, "s:openai") == b"2"
    ttl_s = await redis.ttl(use)
    assert 0 < ttl_s <= settings.usage_retention_days * 86_400 + 86_400


async def test_no_service_limit_is_none(store, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    assert (await store.next_key(t.client, "s", IP)).max_daily_requests is None


@pytest.mark.parametrize("mutate", ["secret", "tenant", "app_of_other_tenant"])
async def test_invalid_token(store, redis, settings, mutate):
    t = await seed.tenant(redis)
    other = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    token = t.client
    if mutate == "secret":
        token = token._replace(secret_hash="0" * 64)
    elif mutate == "tenant":
        token = token._replace(tenant="nosuchtenant")
    else:
        app = await seed.app(redis, other)
        token = app._replace(tenant=t.tenant)
    with pytest.raises(errors.InvalidToken):
        await store.next_key(token, "s", IP)


async def test_revoked_app_and_deleted_tenant_refused_next_request(store, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    app = await seed.app(redis, t)
    await store.next_key(app, "s", IP)
    await redis.delete(keys.app(t.tenant, app.app))
    with pytest.raises(errors.InvalidToken):
        await store.next_key(app, "s", IP)
    await store.next_key(t.client, "s", IP)
    # tenants are never deleted; were one, its services would go with it
    await redis.delete(keys.tenant(t.tenant), keys.service(t.tenant, "s"))
    with pytest.raises(errors.InvalidToken):
        await store.next_key(t.client, "s", IP)


@pytest.mark.parametrize(
    ("allow", "client", "ok"),
    [
        (["203.0.113.0/24"], "203.0.113.7", True),
        (["203.0.113.0/24"], "203.0.114.7", False),
        (["203.0.113.7"], "::ffff:203.0.113.7", True),
        (["::ffff:203.0.113.0/120"], "203.0.113.9", True),
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "2001:db9::5", False),
        (["10.0.0.0/8", "2001:db8::/32"], "10.200.0.1", True),
        (["0.0.0.0/0"], "2001:db8::1", False),
        # an IPv6 range that holds ::ffff:0:0/96 (where IPv4 is kept) names IPv6 only
        (["::/0"], "2001:db8::1", True),
        (["::/0"], "203.0.113.7", False),
        (["::/64"], "::ffff:203.0.113.7", False),
        (["::/64"], "::1", True),
        (["::/0", "203.0.113.0/24"], "203.0.113.7", True),
        (["10.0.0.0/8"], "not-an-ip", False),
    ],
)
async def test_tenant_allowlist(store, redis, settings, allow, client, ok):
    t = await seed.tenant(redis, allow=allow)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    if ok:
        await store.next_key(t.client, "s", ip_hex(client))
    else:
        with pytest.raises(errors.IpNotAllowed):
            await store.next_key(t.client, "s", ip_hex(client))


async def test_app_allowlist_applies_on_top_of_tenant(store, redis, settings):
    t = await seed.tenant(redis, allow=["10.0.0.0/8"])
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    app = await seed.app(redis, t, allow=["10.1.0.0/16"])
    await store.next_key(app, "s", ip_hex("10.1.2.3"))
    with pytest.raises(errors.IpNotAllowed):
        await store.next_key(app, "s", ip_hex("10.2.2.3"))
    await store.next_key(t.client, "s", ip_hex("10.2.2.3"))  # the client token has no app list


async def test_allowlist_removal_takes_effect_on_next_request(store, redis, settings):
    t = await seed.tenant(redis, allow=["10.0.0.0/8"])
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    await store.next_key(t.client, "s", ip_hex("10.0.0.1"))
    await seed.tenant_fields(redis, t.tenant, allow="")
    await store.next_key(t.client, "s", ip_hex("192.0.2.1"))
    await seed.tenant_fields(redis, t.tenant, allow=ip_hex("10.0.0.1") * 2)
    with pytest.raises(errors.IpNotAllowed):
        await store.next_key(t.client, "s", ip_hex("10.0.0.2"))


async def test_precedence_of_rejections(store, redis, settings):
    """token > ip > demo throttle > unknown service > limit > no active keys."""
    t = await seed.tenant(redis, demo=True, allow=["10.0.0.0/8"])
    outside = ip_hex("192.0.2.1")
    with pytest.raises(errors.InvalidToken):
        await store.next_key(t.client._replace(secret_hash="0" * 64), "nope", outside)
    with pytest.raises(errors.IpNotAllowed):
        await store.next_key(t.client, "nope", outside)
    inside = ip_hex("10.0.0.1")
    for _ in range(settings.demo_burst):
        with pytest.raises(errors.UnknownService):
            await store.next_key(t.client, "nope", inside)
    with pytest.raises(errors.DemoRateLimited):
        await store.next_key(t.client, "nope", inside)

    t2 = await seed.tenant(redis)
    await seed.service(redis, t2, "s", policy="usage", max_daily=1)
    with pytest.raises(errors.NoActiveKeys):
        await store.next_key(t2.client, "s", inside)
    await seed.key(redis, settings.keyring, t2, "s", "sk-x")
    await store.next_key(t2.client, "s", inside)
    await redis.hset(keys.service(t2.tenant, "s"), "a:1", "0")
    with pytest.raises(errors.DailyLimitReached):  # the limit is checked before selection
        await store.next_key(t2.client, "s", inside)


async def test_rejections_before_selection_are_not_counted(store, redis, settings, clock):
    t = await seed.tenant(redis, allow=["10.0.0.0/8"])
    await seed.service(redis, t, "s", policy="usage", max_daily=5)
    await seed.key(redis, settings.keyring, t, "s", "sk-x")
    for _ in range(3):
        with pytest.raises(errors.IpNotAllowed):
            await store.next_key(t.client, "s", ip_hex("192.0.2.1"))
        with pytest.raises(errors.InvalidToken):
            await store.next_key(t.client._replace(secret_hash="0" * 64), "s", ip_hex("10.0.0.1"))
    assert await redis.exists(keys.usage(t.tenant, utc_day(clock()))) == 0


async def test_manual_policy_sticks_to_primary_until_rotated(store, redis, settings, clock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="manual")
    a, b, c = [await seed.key(redis, settings.keyring, t, "s", f"sk-{i}") for i in range(3)]
    picks = [(await store.next_key(t.client, "s", IP)).key_id for _ in range(5)]
    assert picks == [a] * 5
    rotated = await rotate(redis, t.tenant, "s", clock())
    assert (rotated.from_key_id, rotated.to_key_id) == (a, b)
    assert (await store.next_key(t.client, "s", IP)).key_id == b
    await redis.hset(keys.service(t.tenant, "s"), f"a:{c}", "0")
    rotated = await rotate(redis, t.tenant, "s", clock())  # skips the disabled key, wraps
    assert (rotated.from_key_id, rotated.to_key_id) == (b, a)
    await redis.hset(keys.service(t.tenant, "s"), f"a:{a}", "0")
    assert (await store.next_key(t.client, "s", IP)).key_id == b  # disabled primary: next active
    assert [e for e, _ in await events(redis, t.tenant)].count("key.rotated") == 2


async def test_manual_primary_at_its_key_limit_overflows(store, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="manual")
    a = await seed.key(redis, settings.keyring, t, "s", "sk-a", max_daily=2)
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b", max_daily=1)
    picks = [(await store.next_key(t.client, "s", IP)).key_id for _ in range(3)]
    assert picks == [a, a, b]
    with pytest.raises(errors.DailyLimitReached):
        await store.next_key(t.client, "s", IP)


async def test_rotate_errors(store, redis, settings, clock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "u", policy="usage")
    await seed.service(redis, t, "m", policy="manual")
    with pytest.raises(errors.NotFound):
        await rotate(redis, t.tenant, "nope", clock())
    with pytest.raises(errors.Conflict):
        await rotate(redis, t.tenant, "u", clock())
    with pytest.raises(errors.Conflict, match=r"^no active keys$"):
        await rotate(redis, t.tenant, "m", clock())


async def test_time_policy_expires_keys_by_the_clock(store, redis, settings, clock: FakeClock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="time", ttl_minutes=10)
    a, b = [await seed.key(redis, settings.keyring, t, "s", f"sk-{i}") for i in range(2)]

    assert (await store.next_key(t.client, "s", IP)).key_id == a
    clock.advance(minutes=9, s=59)
    assert (await store.next_key(t.client, "s", IP)).key_id == a
    clock.advance(s=1)  # exactly ttl after a entered rotation: a is expired
    assert (await store.next_key(t.client, "s", IP)).key_id == b
    clock.advance(minutes=5)
    await seed.key(redis, settings.keyring, t, "s", "sk-c")
    assert (await store.next_key(t.client, "s", IP)).key_id == b  # b's 10 minutes run from now-5
    clock.advance(minutes=5)
    c = t.key_ids[-1]
    assert (await store.next_key(t.client, "s", IP)).key_id == c
    clock.advance(minutes=10)
    with pytest.raises(errors.NoActiveKeys):
        await store.next_key(t.client, "s", IP)
    with pytest.raises(errors.NoActiveKeys):
        await store.next_key(t.client, "s", IP)
    recorded = await events(redis, t.tenant)
    assert [e for e, _ in recorded] == ["key.rotated", "key.rotated", "service.no_active_keys"]
    assert recorded[0][1] == {"service": "s", "from_key_id": a, "to_key_id": b, "reason": "expired"}


async def test_usage_policy_balances_exactly(store, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    for i in range(3):
        await seed.key(redis, settings.keyring, t, "s", f"sk-{i}")
    picks = await asyncio.gather(*(store.next_key(t.client, "s", IP) for _ in range(300)))
    counts = Counter(d.key_id for d in picks)
    assert sorted(counts.values()) == [100, 100, 100]


async def test_usage_policy_prefers_least_used_and_skips_keys_at_their_limit(
    store, redis, settings
):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    a = await seed.key(redis, settings.keyring, t, "s", "sk-a", max_daily=2)
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b")
    picks = [(await store.next_key(t.client, "s", IP)).key_id for _ in range(6)]
    assert picks == [a, b, a, b, b, b]
    c = await seed.key(redis, settings.keyring, t, "s", "sk-c")
    picks = [(await store.next_key(t.client, "s", IP)).key_id for _ in range(5)]
    assert picks == [c, c, c, c, b]  # the newcomer catches up with b's 4


async def test_disabled_keys_are_never_delivered(store, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-a", active=False)
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b")
    picks = {(await store.next_key(t.client, "s", IP)).key_id for _ in range(5)}
    assert picks == {b}


async def test_service_limit_records_event_once_per_day(store, redis, settings, clock):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage", max_daily=3)
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    for _ in range(3):
        await store.next_key(t.client, "s", IP)
    for _ in range(3):
        with pytest.raises(errors.DailyLimitReached):
            await store.next_key(t.client, "s", IP)
    assert [e for e, _ in await events(redis, t.tenant)] == ["service.limit_reached"]

    clock.now_ms = (utc_day(clock()) + 1) * DAY_MS  # next UTC midnight: fresh counters
    assert (await store.next_key(t.client, "s", IP)).usage_today == 1
    for _ in range(2):
        await store.next_key(t.client, "s", IP)
    with pytest.raises(errors.DailyLimitReached):
        await store.next_key(t.client, "s", IP)
    assert [e for e, _ in await events(redis, t.tenant)].count("service.limit_reached") == 2


async def test_key_delivered_only_when_subscribed(store, redis, settings):
    quiet = await seed.tenant(redis)
    loud = await seed.tenant(redis, events=",key.delivered,")
    for t in (quiet, loud):
        await seed.service(redis, t, "s", policy="usage")
        await seed.key(redis, settings.keyring, t, "s", "sk-a")
        await store.next_key(t.client, "s", IP)
    assert await events(redis, quiet.tenant) == []
    [(kind, data)] = await events(redis, loud.tenant)
    assert kind == "key.delivered"
    assert data == {"service": "s", "key_id": loud.key_ids[0], "usage_today": 1}


async def test_no_active_keys_recorded_once_until_keys_return(store, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    for _ in range(3):
        with pytest.raises(errors.NoActiveKeys):
            await store.next_key(t.client, "s", IP)
    assert [e for e, _ in await events(redis, t.tenant)] == ["service.no_active_keys"]


async def test_demo_throttle_is_smooth_per_ip(store, redis, settings, clock):
    t = await seed.tenant(redis, demo=True)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-a")
    for _ in range(settings.demo_burst):
        delivery = await store.next_key(t.client, "s", IP)
        assert delivery.demo
    with pytest.raises(errors.DemoRateLimited) as caught:
        await store.next_key(t.client, "s", IP)
    interval_s = 60 / settings.demo_rate_per_min
    assert caught.value.retry_after_s == max(1, round(interval_s))
    await store.next_key(t.client, "s", ip_hex("203.0.113.8"))  # another IP has its own budget
    clock.advance(s=interval_s)
    await store.next_key(t.client, "s", IP)  # one interval later: exactly one more
    with pytest.raises(errors.DemoRateLimited):
        await store.next_key(t.client, "s", IP)
    gcra = keys.gcra(t.tenant, IP)
    assert 0 < await redis.pttl(gcra) <= (settings.demo_burst + 1) * interval_s * 1000


async def test_one_clock_the_script_names_the_day_it_counts_in(redis, settings):
    """In production (no injected time) the script's clock (Redis TIME) alone decides the
    day: the process's clock is not read, so a process clock a day off (or straddling a UTC
    midnight with the store's) cannot count a delivery into another day's hash."""
    wrong = FakeClock(3 * DAY_MS)  # 1970: if anything read it, the day would be 3
    store = await DeliveryStore.open(settings, wrong, fixed_clock=False)
    try:
        t = await seed.tenant(redis)
        await seed.service(redis, t, "s", policy="usage", max_daily=10)
        kid = await seed.key(redis, settings.keyring, t, "s", "sk-x")
        seconds, micros = await redis.time()
        delivered = await store.next_key(t.client, "s", IP)
    finally:
        await store.close()
    today = utc_day(seconds * 1000 + micros // 1000)
    assert delivered.receipt[1] in (today, today + 1)  # the call may cross midnight itself
    day = delivered.receipt[1]
    assert await redis.hget(keys.usage(t.tenant, day), f"k:{kid}") == b"1"
    assert not await redis.exists(keys.usage(t.tenant, 3))
    assert 0 < delivered.reset_s <= 86_400
    # the operator's listing without a time names today by the same clock
    await redis.sadd(keys.TENANTS, t.tenant)
    [listed] = await tenants.list_tenants(redis)
    assert (listed.id, listed.deliveries_today) == (t.tenant, 1)


async def test_an_injected_time_names_the_day_through_the_same_argument(
    store, redis, settings, clock
):
    """Tests pass their time where production passes '': a delivery just before and just after
    a UTC midnight counts in the two days' hashes, and the limit resets in between."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage", max_daily=1)
    kid = await seed.key(redis, settings.keyring, t, "s", "sk-x")
    clock.now_ms = 20_000 * DAY_MS - 1
    await store.next_key(t.client, "s", IP)
    with pytest.raises(errors.DailyLimitReached) as refused:
        await store.next_key(t.client, "s", IP)
    assert refused.value.retry_after_s == 1
    clock.advance(ms=1)
    assert (await store.next_key(t.client, "s", IP)).usage_today == 1
    for day in (19_999, 20_000):
        assert await redis.hget(keys.usage(t.tenant, day), f"k:{kid}") == b"1"


async def test_stale_key_ids_hint_never_changes_a_decision(store, redis, settings):
    """The process remembers the service's key ids; the script re-reads them when they moved."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage")
    a = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b")
    assert {(await store.next_key(t.client, "s", IP)).key_id for _ in range(2)} == {a, b}
    assert store._ids_hint[(t.tenant, "s")] == (f"{a},{b}", (str(a), str(b)))

    await redis.hset(keys.service(t.tenant, "s"), "ids", str(b))  # a removed from rotation
    picks = {(await store.next_key(t.client, "s", IP)).key_id for _ in range(3)}
    assert picks == {b}
    assert store._ids_hint[(t.tenant, "s")] == (str(b), (str(b),))

    # a hint naming a key the service never had is just as harmless
    store._ids_hint[(t.tenant, "s")] = ("999", ("999",))
    assert (await store.next_key(t.client, "s", IP)).key_id == b


async def test_a_retried_request_is_counted_once(store, redis, settings, clock):
    """A proxy resending a request (same request id) gets the first attempt's key, uncounted."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "s", policy="usage", max_daily=2)
    a = await seed.key(redis, settings.keyring, t, "s", "sk-a")
    b = await seed.key(redis, settings.keyring, t, "s", "sk-b")
    first = await store.next_key(t.client, "s", IP, "req-0001")
    again = await store.next_key(t.client, "s", IP, "req-0001")
    assert (first.key_id, again.key_id) == (a, a)
    assert (first.usage_today, again.usage_today) == (1, 1)
    assert (await store.next_key(t.client, "s", IP, "req-0002")).key_id == b
    # the limit (2) is reached, yet the retry of an answered request is still answered
    assert (await store.next_key(t.client, "s", IP, "req-0002")).key_id == b
    with pytest.raises(errors.DailyLimitReached):
        await store.next_key(t.client, "s", IP, "req-0003")
    use = keys.usage(t.tenant, utc_day(clock()))
    assert await redis.hget(use, "s:s") == b"2"
    assert 0 < await redis.pttl(keys.tag(t.tenant) + ":rid:req-0001") <= 60_000
