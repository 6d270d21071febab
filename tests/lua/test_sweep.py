"""sweep_service.lua on a real Valkey, through its wrapper, with an injected clock (no sleeping)."""

from __future__ import annotations

import json

from rotator.domain.clock import FakeClock
from rotator.domain.iprange import ip_hex
from rotator.store import keys
from rotator.store.delivery import DeliveryStore
from rotator.store.sweep import sweep_service, time_services
from tests.conftest import T0_MS
from tests.lua import seed

MINUTE_MS = 60_000
TTL_MIN = 10
IP = ip_hex("203.0.113.7")


async def events(redis, tenant):
    return [
        (f[b"type"].decode(), json.loads(f[b"data"]))
        for _, f in await redis.xrange(keys.events(tenant))
    ]


async def sweep(redis, t, slug="svc", *, now_ms):
    return await sweep_service(redis, t.tenant, slug, now_ms=now_ms, events_maxlen=1000)


async def time_service(redis, settings, t, *, n_keys=2, entered_ms=(T0_MS,), labels=None):
    """A time service with `n_keys` keys; key i entered rotation at entered_ms[i] (if given)."""
    await seed.service(redis, t, "svc", policy="time", ttl_minutes=TTL_MIN)
    ids = []
    for i in range(n_keys):
        label = labels[i] if labels else f"k{i}"
        ids.append(await seed.key(redis, settings.keyring, t, "svc", f"sk-{i}", label=label))
    for key_id, entered in zip(ids, entered_ms, strict=False):
        await redis.hset(keys.service(t.tenant, "svc"), f"t:{key_id}", entered)
    return ids


async def test_nothing_expires_before_ttl(redis, settings):
    t = await seed.tenant(redis)
    await time_service(redis, settings, t)
    result = await sweep(redis, t, now_ms=T0_MS + TTL_MIN * MINUTE_MS - 1)
    assert (result.status, result.newly_expired, result.noact_set) == ("ok", 0, False)
    assert await events(redis, t.tenant) == []


async def test_expired_key_marked_and_recorded_once(redis, settings):
    t = await seed.tenant(redis)
    first, second = await time_service(redis, settings, t, labels=['Prim"ary ✓', "Backup"])
    at_ttl = T0_MS + TTL_MIN * MINUTE_MS  # expiry is inclusive: now >= t + ttl

    result = await sweep(redis, t, now_ms=at_ttl)

    assert (result.newly_expired, result.noact_set) == (1, False)
    svc = keys.service(t.tenant, "svc")
    assert await redis.hget(svc, f"x:{first}") == str(at_ttl).encode()
    assert await redis.hget(svc, f"x:{second}") is None
    assert await events(redis, t.tenant) == [
        ("key.expired", {"service": "svc", "key_id": first, "label": 'Prim"ary ✓'})
    ]
    # the key that never entered rotation is still available: no no_active_keys
    again = await sweep(redis, t, now_ms=at_ttl + 5 * MINUTE_MS)
    assert again.newly_expired == 0
    assert len(await events(redis, t.tenant)) == 1
    assert await redis.hget(svc, f"x:{first}") == str(at_ttl).encode()


async def test_all_expired_records_no_active_keys_once_per_episode(redis, settings):
    t = await seed.tenant(redis)
    first, second = await time_service(
        redis, settings, t, entered_ms=(T0_MS, T0_MS + 3 * MINUTE_MS)
    )
    now = T0_MS + (TTL_MIN + 3) * MINUTE_MS

    result = await sweep(redis, t, now_ms=now)
    assert (result.newly_expired, result.noact_set) == (2, True)
    recorded = await events(redis, t.tenant)
    assert [e[0] for e in recorded] == ["key.expired", "key.expired", "service.no_active_keys"]
    assert {e[1]["key_id"] for e in recorded[:2]} == {first, second}
    assert recorded[2][1] == {"service": "svc"}
    assert await redis.hget(keys.service(t.tenant, "svc"), "noact") == b"1"

    for minutes in (1, 2, 60):
        later = await sweep(redis, t, now_ms=now + minutes * MINUTE_MS)
        assert (later.newly_expired, later.noact_set) == (0, False)
    assert len(await events(redis, t.tenant)) == 3

    # the management API clears the flag when a key is added or enabled: a new episode
    await redis.hdel(keys.service(t.tenant, "svc"), "noact")
    fresh = await sweep(redis, t, now_ms=now + 61 * MINUTE_MS)
    assert fresh.noact_set
    assert [e[0] for e in await events(redis, t.tenant)][-1] == "service.no_active_keys"


async def test_disabled_keys_are_not_available_and_not_marked(redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "svc", policy="time", ttl_minutes=TTL_MIN)
    off = await seed.key(redis, settings.keyring, t, "svc", "sk-off", active=False)
    svc = keys.service(t.tenant, "svc")
    await redis.hset(svc, f"t:{off}", T0_MS)

    result = await sweep(redis, t, now_ms=T0_MS + 2 * TTL_MIN * MINUTE_MS)

    assert (result.newly_expired, result.noact_set) == (0, True)
    assert await redis.hget(svc, f"x:{off}") is None
    assert await events(redis, t.tenant) == [("service.no_active_keys", {"service": "svc"})]


async def test_unsubscribed_events_not_recorded_but_state_kept(redis, settings):
    t = await seed.tenant(redis, events=",key.delivered,")
    (only,) = await time_service(redis, settings, t, n_keys=1)

    result = await sweep(redis, t, now_ms=T0_MS + TTL_MIN * MINUTE_MS)

    assert (result.newly_expired, result.noact_set) == (1, True)
    assert await redis.hget(keys.service(t.tenant, "svc"), f"x:{only}") is not None
    assert await redis.exists(keys.events(t.tenant)) == 0


async def test_service_without_keys_raises_no_alarm(redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "svc", policy="time", ttl_minutes=TTL_MIN)
    result = await sweep(redis, t, now_ms=T0_MS)
    assert (result.status, result.noact_set) == ("ok", False)
    assert await events(redis, t.tenant) == []


async def test_missing_and_non_time_services(redis, settings):
    t = await seed.tenant(redis)
    assert (await sweep(redis, t, "gone", now_ms=T0_MS)).status == "missing"
    await seed.service(redis, t, "usage", policy="usage")
    await seed.key(redis, settings.keyring, t, "usage", "sk-u")
    result = await sweep(redis, t, "usage", now_ms=T0_MS + 10**9)
    assert (result.status, result.newly_expired, result.noact_set) == ("not_time", 0, False)
    assert await redis.exists(keys.events(t.tenant)) == 0


async def test_server_clock_when_no_now_given(redis, settings):
    t = await seed.tenant(redis)
    (key_id,) = await time_service(redis, settings, t, n_keys=1, entered_ms=(1_000,))
    result = await sweep_service(redis, t.tenant, "svc", now_ms=None, events_maxlen=1000)
    assert result.newly_expired == 1  # Redis TIME is decades past 1970 + 10 minutes
    x_ms = int(await redis.hget(keys.service(t.tenant, "svc"), f"x:{key_id}"))
    assert x_ms > T0_MS - 365 * 86_400_000 * 5


async def test_agrees_with_selection(redis, settings):
    """The key the sweep calls expired is the one next_key stops returning, at the same instant."""
    t = await seed.tenant(redis)
    await seed.service(redis, t, "svc", policy="time", ttl_minutes=TTL_MIN)
    first = await seed.key(redis, settings.keyring, t, "svc", "sk-1")
    second = await seed.key(redis, settings.keyring, t, "svc", "sk-2")
    clock = FakeClock(T0_MS)
    store = await DeliveryStore.open(settings, clock, fixed_clock=True)
    try:
        assert (await store.next_key(t.client, "svc", IP)).key_id == first  # enters rotation
        clock.advance(minutes=TTL_MIN, ms=-1)
        assert (await sweep(redis, t, now_ms=clock())).newly_expired == 0
        assert (await store.next_key(t.client, "svc", IP)).key_id == first
        clock.advance(ms=1)
        assert (await sweep(redis, t, now_ms=clock())).newly_expired == 1
        assert (await store.next_key(t.client, "svc", IP)).key_id == second
    finally:
        await store.close()
    types = [e[0] for e in await events(redis, t.tenant)]
    assert types == ["key.expired", "key.rotated"]


async def test_time_services_registry(redis):
    await redis.sadd(keys.TIME_SERVICES, "abc:openai", "abc:a:b", "def:x", "broken", ":x")
    found = sorted([pair async for pair in time_services(redis)])
    assert found == [("abc", "a:b"), ("abc", "openai"), ("def", "x")]


async def test_stream_is_capped(redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "svc", policy="time", ttl_minutes=TTL_MIN)
    svc = keys.service(t.tenant, "svc")
    for _ in range(300):
        key_id = await seed.key(redis, settings.keyring, t, "svc", "sk")
        await redis.hset(svc, f"t:{key_id}", T0_MS)
    await sweep_service(redis, t.tenant, "svc", now_ms=T0_MS + 10**9, events_maxlen=5)
    # MAXLEN ~ trims whole macro nodes (100 entries by default): far fewer than 301 remain
    assert await redis.xlen(keys.events(t.tenant)) < 301
