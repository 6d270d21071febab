"""Disagreements the reference model's state machine (tests/model/) found between the scripts
and the documented rules, each reduced to the shortest sequence that shows it, through the
public store functions. A script bug stays here as a strict xfail until it is fixed, then as a
regression test."""

from __future__ import annotations

import json

import pytest

from rotator.domain.iprange import ip_hex
from rotator.domain.tokens import parse
from rotator.store import keys, services, tenants
from rotator.store.connection import Durability
from rotator.store.delivery import DeliveryStore

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


async def rotated(redis, tenant: str) -> list[dict]:
    entries = await redis.xrange(keys.events(tenant))
    return [json.loads(f[b"data"]) for _, f in entries if f[b"type"] == b"key.rotated"]


async def time_service_with_two_keys(redis, settings, clock):
    """A tenant subscribed to key.rotated, its client token, a time service `s` (keys live an
    hour) and its two keys."""
    d = Durability()
    created = await tenants.create_tenant(redis, d, name="t", demo=False, now_ms=clock())
    t = created.id
    await tenants.update_tenant(
        redis, d, settings.keyring, t,
        webhook_url="http://127.0.0.1:9/hook", webhook_events=["key.rotated"],
        webhook_allow_private=True,
    )  # fmt: skip
    client = parse(created.client_token)
    assert client is not None
    await services.create_service(
        redis, d, t, slug="s", policy="time", key_ttl_minutes=60, now_ms=clock()
    )
    first = await services.add_key(
        redis, d, settings.keyring, t, "s", label="first", secret="sk-1", now_ms=clock()
    )
    second = await services.add_key(
        redis, d, settings.keyring, t, "s", label="second", secret="sk-2", now_ms=clock()
    )
    return d, t, client, first, second


async def test_a_disabled_key_is_not_reported_as_expired(store, redis, settings, clock):
    d, t, client, first, second = await time_service_with_two_keys(redis, settings, clock)
    assert (await store.next_key(client, "s", IP)).key_id == first.id
    maxlen = settings.events_maxlen
    # the second key off, then the first (current: no usable key to move to, it stays put)
    await services.update_key(redis, d, t, "s", second.id, active=False, now_ms=clock(),
                              events_maxlen=maxlen)  # fmt: skip
    await services.update_key(redis, d, t, "s", first.id, active=False, now_ms=clock(),
                              events_maxlen=maxlen)  # fmt: skip
    await services.update_key(redis, d, t, "s", second.id, active=True, now_ms=clock(),
                              events_maxlen=maxlen)  # fmt: skip
    # a minute later, well within the first key's hour: it was disabled, it did not expire
    clock.advance(minutes=1)
    assert (await store.next_key(client, "s", IP)).key_id == second.id
    assert all(e["reason"] != "expired" for e in await rotated(redis, t))


async def test_moving_a_key_reports_no_expiry_of_a_disabled_key(redis, settings, clock):
    # the sequence the state machine found (tests/model/), at the store's interface
    d, t, _client, first, second = await time_service_with_two_keys(redis, settings, clock)
    maxlen = settings.events_maxlen
    # the first key off: the second becomes current (key.rotated 'disabled'); then the second
    # off too (nothing usable: the pointer stays on it); the first back on
    for key_id, active in ((first.id, False), (second.id, False), (first.id, True)):
        await services.update_key(redis, d, t, "s", key_id, active=active, now_ms=clock(),
                                  events_maxlen=maxlen)  # fmt: skip
    # moving a key pins the pointer to the current key (the first): no key has expired
    await services.move_key(redis, d, t, "s", first.id, to="front", now_ms=clock(),
                            events_maxlen=maxlen)  # fmt: skip
    assert [e["reason"] for e in await rotated(redis, t)] == ["disabled"]
