"""The scripts that change what is current (key_update, key_remove, key_move, rotate,
service_update, key_add) through their store wrappers, against deliveries by next_key.lua,
on an injected clock: what the listing says is what the next delivery does."""

from __future__ import annotations

import itertools
import json

import pytest

from rotator.domain import errors
from rotator.domain.clock import FakeClock
from rotator.domain.iprange import ip_hex
from rotator.domain.models import NewKey
from rotator.store import keys, services
from rotator.store.connection import Durability
from rotator.store.delivery import DeliveryStore
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")
D = Durability()


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


@pytest.fixture
async def tenant(redis):
    return await seed.tenant(redis)


SECRETS = itertools.count()
"""A service never holds one secret twice: each added key's is new."""


async def add(redis, settings, clock, t, slug, n, **new_key) -> list[int]:
    added = await services.add_keys(
        redis, D, settings.keyring, t.tenant, slug,
        [NewKey(secret=f"sk-{slug}-{next(SECRETS)}-0123456789", **new_key) for _ in range(n)],
        now_ms=clock(),
    )  # fmt: skip
    return [k.id for k in added.keys]


async def current(redis, t, slug, clock) -> int | None:
    listed = await services.list_keys(redis, t.tenant, slug, now_ms=clock())
    found = [k.id for k in listed if k.current]
    assert len(found) <= 1
    return found[0] if found else None


async def delivered(store, t, slug) -> int:
    return (await store.next_key(t.client, slug, IP)).key_id


async def rotations(redis, t) -> list[tuple[int, int, str]]:
    out = []
    for _, fields in await redis.xrange(keys.events(t.tenant)):
        if fields[b"type"] == b"key.rotated":
            data = json.loads(fields[b"data"])
            out.append((data["from_key_id"], data["to_key_id"], data["reason"]))
    return out


def change(clock):
    return {"now_ms": clock(), "events_maxlen": 1000}


@pytest.mark.parametrize("policy", ["manual", "time"])
async def test_current_is_right_from_the_first_key_on(
    store, redis, settings, clock, tenant, policy
):
    ttl = {"key_ttl_minutes": 10} if policy == "time" else {}
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy=policy, now_ms=clock(), **ttl
    )
    (first,) = await add(redis, settings, clock, tenant, "s", 1)
    assert await current(redis, tenant, "s", clock) == first  # before any delivery
    single = await services.get_key(redis, tenant.tenant, "s", first, now_ms=clock())
    assert single.current and single.state == "active" and single.expires_at is None
    await add(redis, settings, clock, tenant, "s", 2)
    assert await current(redis, tenant, "s", clock) == first
    assert await delivered(store, tenant, "s") == first


@pytest.mark.parametrize("policy", ["manual", "time"])
@pytest.mark.parametrize("how", ["disabled", "deleted"])
async def test_losing_the_current_key_moves_current_at_once(
    store, redis, settings, clock, tenant, policy, how
):
    ttl = {"key_ttl_minutes": 10} if policy == "time" else {}
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy=policy, now_ms=clock(), **ttl
    )
    a, b, c = await add(redis, settings, clock, tenant, "s", 3)
    await services.update_key(redis, D, tenant.tenant, "s", b, active=False, **change(clock))
    assert await delivered(store, tenant, "s") == a
    if how == "disabled":
        await services.update_key(redis, D, tenant.tenant, "s", a, active=False, **change(clock))
    else:
        await services.remove_key(redis, D, tenant.tenant, "s", a, **change(clock))
    # the listing says c at once (b is disabled), the next delivery agrees, and key.rotated
    # says why; disabling b (not current) recorded nothing
    assert await current(redis, tenant, "s", clock) == c
    assert await rotations(redis, tenant) == [(a, c, how)]
    assert await delivered(store, tenant, "s") == c
    assert await rotations(redis, tenant) == [(a, c, how)]


async def test_losing_the_last_usable_key_records_no_rotation(
    store, redis, settings, clock, tenant
):
    await services.create_service(redis, D, tenant.tenant, slug="s", policy="manual", now_ms=0)
    (a,) = await add(redis, settings, clock, tenant, "s", 1)
    await services.update_key(redis, D, tenant.tenant, "s", a, active=False, **change(clock))
    assert await current(redis, tenant, "s", clock) is None
    assert await rotations(redis, tenant) == []
    with pytest.raises(errors.NoActiveKeys):
        await delivered(store, tenant, "s")


async def test_disabling_a_key_that_is_not_current_changes_nothing(
    store, redis, settings, clock, tenant
):
    await services.create_service(redis, D, tenant.tenant, slug="s", policy="manual", now_ms=0)
    a, b, c = await add(redis, settings, clock, tenant, "s", 3)
    # b is primary
    await services.rotate(redis, D, tenant.tenant, "s", now_ms=clock(), events_maxlen=1000)
    await services.remove_key(redis, D, tenant.tenant, "s", a, **change(clock))
    await services.update_key(redis, D, tenant.tenant, "s", c, active=False, **change(clock))
    assert await current(redis, tenant, "s", clock) == b
    assert await rotations(redis, tenant) == [(a, b, "manual")]
    assert await delivered(store, tenant, "s") == b


async def test_deleting_a_disabled_primary_keeps_the_key_in_use(
    store, redis, settings, clock, tenant
):
    """The pointer named a disabled key (a service stored by an earlier version): deleting that
    key pins the pointer to the key in use, never to whatever follows the deleted one."""
    await services.create_service(redis, D, tenant.tenant, slug="s", policy="manual", now_ms=0)
    _a, b, c = await add(redis, settings, clock, tenant, "s", 3)
    await redis.hset(keys.service(tenant.tenant, "s"), mapping={"cur": b, f"a:{b}": "0"})
    assert await current(redis, tenant, "s", clock) == c
    await services.remove_key(redis, D, tenant.tenant, "s", b, **change(clock))
    assert await redis.hget(keys.service(tenant.tenant, "s"), "cur") == str(c).encode()
    assert await delivered(store, tenant, "s") == c
    assert await rotations(redis, tenant) == []


async def test_enabling_an_expired_key_restarts_its_lifetime(
    store, redis, settings, clock: FakeClock, tenant
):
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy="time", key_ttl_minutes=10, now_ms=clock()
    )
    a, b = await add(redis, settings, clock, tenant, "s", 2)
    assert await delivered(store, tenant, "s") == a
    start = clock()
    clock.advance(minutes=10)
    assert await delivered(store, tenant, "s") == b
    listed = {k.id: k for k in await services.list_keys(redis, tenant.tenant, "s", now_ms=clock())}
    assert listed[a].state == "expired" and listed[a].expires_at == "2026-03-01T12:10:00.000Z"
    assert listed[b].state == "active" and listed[b].current
    assert start + 10 * 60_000 == clock()

    again = await services.update_key(redis, D, tenant.tenant, "s", a, active=True, **change(clock))
    assert (again.state, again.expires_at) == ("active", None)  # re-enters at its next delivery
    clock.advance(minutes=10)  # b's lifetime ends: a is next, with ten fresh minutes
    assert await delivered(store, tenant, "s") == a
    clock.advance(minutes=9)
    assert await delivered(store, tenant, "s") == a
    clock.advance(minutes=1)
    with pytest.raises(errors.NoActiveKeys):
        await delivered(store, tenant, "s")
    assert [r[2] for r in await rotations(redis, tenant)] == ["expired", "expired"]


async def test_enabling_a_running_key_keeps_its_lifetime(store, redis, settings, clock, tenant):
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy="time", key_ttl_minutes=10, now_ms=clock()
    )
    (a,) = await add(redis, settings, clock, tenant, "s", 1)
    await delivered(store, tenant, "s")
    clock.advance(minutes=4)
    kept = await services.update_key(redis, D, tenant.tenant, "s", a, active=True, **change(clock))
    assert kept.expires_at == "2026-03-01T12:10:00.000Z"


async def test_a_disabled_time_key_restarts_when_enabled(store, redis, settings, clock, tenant):
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy="time", key_ttl_minutes=10, now_ms=clock()
    )
    a, b = await add(redis, settings, clock, tenant, "s", 2)
    await delivered(store, tenant, "s")
    clock.advance(minutes=4)
    await services.update_key(redis, D, tenant.tenant, "s", a, active=False, **change(clock))
    assert await rotations(redis, tenant) == [(a, b, "disabled")]
    back = await services.update_key(redis, D, tenant.tenant, "s", a, active=True, **change(clock))
    assert (back.state, back.expires_at, back.current) == ("active", None, False)


@pytest.mark.parametrize("policy", ["manual", "time", "usage"])
async def test_moving_a_key_never_changes_the_current_key(
    store, redis, settings, clock, tenant, policy
):
    ttl = {"key_ttl_minutes": 10} if policy == "time" else {}
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy=policy, now_ms=clock(), **ttl
    )
    a, b, c = await add(redis, settings, clock, tenant, "s", 3)
    moved = await services.move_key(redis, D, tenant.tenant, "s", c, to="front", **change(clock))
    assert [k.id for k in moved] == [c, a, b]
    if policy == "usage":
        assert not any(k.current for k in moved)
        assert await delivered(store, tenant, "s") == c  # among equals, the first in order
        return
    assert [k.id for k in moved if k.current] == [a]  # it changes what comes next
    assert await delivered(store, tenant, "s") == a
    moved = await services.move_key(redis, D, tenant.tenant, "s", a, to="end", **change(clock))
    assert [k.id for k in moved] == [c, b, a] and [k.id for k in moved if k.current] == [a]
    assert await delivered(store, tenant, "s") == a
    # ... and what comes next is what the new order says
    if policy == "manual":
        await services.rotate(redis, D, tenant.tenant, "s", now_ms=clock(), events_maxlen=1000)
    else:
        clock.advance(minutes=10)
    assert await delivered(store, tenant, "s") == c
    assert await rotations(redis, tenant) == [(a, c, "manual" if policy == "manual" else "expired")]


async def test_move_refusals(redis, settings, clock, tenant):
    await services.create_service(redis, D, tenant.tenant, slug="s", policy="manual", now_ms=0)
    (a,) = await add(redis, settings, clock, tenant, "s", 1)
    with pytest.raises(errors.InvalidField) as err:
        await services.move_key(redis, D, tenant.tenant, "s", a, to="middle", **change(clock))
    assert err.value.field == "to"
    with pytest.raises(errors.NotFound, match="key"):
        await services.move_key(redis, D, tenant.tenant, "s", a + 1, to="end", **change(clock))
    with pytest.raises(errors.NotFound, match="service"):
        await services.move_key(redis, D, tenant.tenant, "x", a, to="end", **change(clock))


async def test_a_policy_change_and_back_keeps_the_manual_primary(
    store, redis, settings, clock: FakeClock, tenant
):
    await services.create_service(redis, D, tenant.tenant, slug="s", policy="manual", now_ms=0)
    a, b, c = await add(redis, settings, clock, tenant, "s", 3)
    await services.rotate(redis, D, tenant.tenant, "s", now_ms=clock(), events_maxlen=1000)
    assert await delivered(store, tenant, "s") == b

    # time starts afresh from the first key and moves through the keys as they expire
    await services.update_service(
        redis, D, tenant.tenant, "s", policy="time", key_ttl_minutes=1, now_ms=clock()
    )
    assert await current(redis, tenant, "s", clock) == a
    assert await delivered(store, tenant, "s") == a
    clock.advance(minutes=1)
    assert await delivered(store, tenant, "s") == b
    clock.advance(minutes=1)
    assert await delivered(store, tenant, "s") == c

    # back to manual: the admin's choice (b) is current again
    await services.update_service(redis, D, tenant.tenant, "s", policy="manual", now_ms=clock())
    assert await current(redis, tenant, "s", clock) == b
    assert await delivered(store, tenant, "s") == b
    # and time, entered again, starts over: every lifetime unstarted
    svc = await services.update_service(
        redis, D, tenant.tenant, "s", policy="time", key_ttl_minutes=1, now_ms=clock()
    )
    assert svc.active_keys == 3
    assert await delivered(store, tenant, "s") == a


async def test_active_keys_counts_only_deliverable_keys(store, redis, settings, clock, tenant):
    await services.create_service(
        redis, D, tenant.tenant, slug="s", policy="time", key_ttl_minutes=10, now_ms=clock()
    )
    _a, _b, c = await add(redis, settings, clock, tenant, "s", 3)
    await services.update_key(redis, D, tenant.tenant, "s", c, active=False, **change(clock))
    svc = await services.get_service(redis, tenant.tenant, "s", now_ms=clock())
    assert (svc.keys, svc.active_keys) == (3, 2)
    assert svc.keys_run_out_at == "2026-03-01T12:20:00.000Z"  # 2 keys x 10 minutes
    await delivered(store, tenant, "s")
    clock.advance(minutes=10)
    svc = await services.get_service(redis, tenant.tenant, "s", now_ms=clock())
    assert svc.active_keys == 1  # a expired
    assert svc.keys_run_out_at == "2026-03-01T12:20:00.000Z"  # b's minutes start when delivered
    clock.advance(minutes=5)
    await delivered(store, tenant, "s")  # b enters rotation now: runs out 10 minutes from here
    svc = await services.get_service(redis, tenant.tenant, "s", now_ms=clock())
    assert svc.keys_run_out_at == "2026-03-01T12:25:00.000Z"
    clock.advance(minutes=10)
    svc = await services.get_service(redis, tenant.tenant, "s", now_ms=clock())
    assert (svc.active_keys, svc.keys_run_out_at) == (0, None)


async def test_bulk_add_is_all_or_nothing(redis, settings, clock, tenant):
    await services.create_service(redis, D, tenant.tenant, slug="s", policy="usage", now_ms=0)
    good = [NewKey(secret="sk-a-0123456789"), NewKey(secret="sk-b-0123456789", label="B")]
    bad = [*good, NewKey(secret="sk-c", max_daily_requests=0)]
    with pytest.raises(errors.InvalidEntry) as err:
        await services.add_keys(redis, D, settings.keyring, tenant.tenant, "s", bad, now_ms=0)
    assert (err.value.index, err.value.field) == (2, "max_daily_requests")
    assert await redis.hget(keys.service(tenant.tenant, "s"), "ids") == b""
    assert await redis.get(keys.seq(tenant.tenant)) is None  # not even an id was drawn

    added = await services.add_keys(redis, D, settings.keyring, tenant.tenant, "s", good, now_ms=0)
    first, second = added.keys
    assert (first.label, second.label) == (f"Key {first.id}", "B")
    assert second.id == first.id + 1
    with pytest.raises(errors.InvalidField) as err:
        await services.add_keys(redis, D, settings.keyring, tenant.tenant, "s", [], now_ms=0)
    assert err.value.field == "keys"
    with pytest.raises(errors.NotFound):
        await services.add_keys(redis, D, settings.keyring, tenant.tenant, "x", good, now_ms=0)
