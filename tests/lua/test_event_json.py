"""Every script that records an event writes valid JSON, whatever a stored slug or label holds.

Slugs and labels are validated on the way in, but a service stored by an earlier version can
hold a slug with a trailing newline (see test_slug_validation.py), and the event JSON must stay
valid for it: a receiver, and the pump before it, parse every body.
"""

from __future__ import annotations

import json

import pytest

from rotator.domain import errors
from rotator.domain.iprange import ip_hex
from rotator.domain.models import EVENT_TYPES
from rotator.store import keys, services, sweep
from rotator.store.connection import Durability
from rotator.store.delivery import DeliveryStore
from rotator.store.events import to_event
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

IP = ip_hex("203.0.113.7")
ALL_EVENTS = "," + ",".join(EVENT_TYPES) + ","
HOSTILE_SLUGS = [
    "openai\n",
    'q"uo\\te/\n\r\t',
    "uni-\u00e7\u00e9-\U0001f600-\u2028\u2029",
    "ctl-\x01\x1f\x7f",
]
HOSTILE_LABEL = 'He said "hi" \\ / \n\t\x01 \u00e9\U0001f600\u2028'


@pytest.fixture
async def store(settings, redis, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


async def recorded(redis, tenant) -> list[tuple[str, dict]]:
    """Each entry's type and data, parsed strictly (json: no raw control characters) and as
    the pump does (store/events.py to_event)."""
    out = []
    for entry_id, fields in await redis.xrange(keys.events(tenant)):
        data = json.loads(fields[b"data"])
        assert to_event(tenant, entry_id.decode(), fields).data == data
        out.append((fields[b"type"].decode(), data))
    return out


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
async def test_events_of_every_script_are_valid_json(store, redis, settings, clock, slug):
    t = await seed.tenant(redis, events=ALL_EVENTS)
    app = await seed.app(redis, t, max_daily=1)

    # next_key.lua: key.delivered (client and app token), app.limit_reached,
    # service.limit_warning, service.limit_reached
    await seed.service(redis, t, slug, policy="usage", max_daily=2, warn_percent=50)
    kid = await seed.key(redis, settings.keyring, t, slug, "sk-u", label=HOSTILE_LABEL)
    await store.next_key(app, slug, IP)
    await store.next_key(t.client, slug, IP)
    # next_key.lua: key.rotated (expired), service.no_active_keys
    timed = slug + "t"
    await seed.service(redis, t, timed, policy="time", ttl_minutes=1)
    a = await seed.key(redis, settings.keyring, t, timed, "sk-a", label=HOSTILE_LABEL)
    b = await seed.key(redis, settings.keyring, t, timed, "sk-b", label=HOSTILE_LABEL)
    await store.next_key(t.client, timed, IP)
    clock.advance(minutes=1)
    await store.next_key(t.client, timed, IP)
    # sweep_service.lua: key.expired (with the label), service.no_active_keys
    clock.advance(minutes=1)
    await sweep.sweep_service(redis, t.tenant, timed, now_ms=clock(), events_maxlen=1000)
    empty = slug + "e"
    await seed.service(redis, t, empty, policy="usage")
    with pytest.raises(errors.NoActiveKeys):
        await store.next_key(t.client, empty, IP)

    events = await recorded(redis, t.tenant)
    app_id = int(app.app)
    assert events == [
        ("app.limit_reached", {"service": slug, "app_id": app_id, "limit": 1}),
        ("service.limit_warning",
         {"service": slug, "limit": 2, "limit_warning_percent": 50, "usage_today": 1}),
        ("key.delivered", {"service": slug, "key_id": kid, "usage_today": 1, "app_id": app_id}),
        ("service.limit_reached", {"service": slug, "scope": "service", "limit": 2}),
        ("key.delivered", {"service": slug, "key_id": kid, "usage_today": 2}),
        ("key.delivered", {"service": timed, "key_id": a, "usage_today": 1}),
        ("key.rotated",
         {"service": timed, "from_key_id": a, "to_key_id": b, "reason": "expired"}),
        ("key.delivered", {"service": timed, "key_id": b, "usage_today": 1}),
        ("key.expired", {"service": timed, "key_id": a, "label": HOSTILE_LABEL}),
        ("key.expired", {"service": timed, "key_id": b, "label": HOSTILE_LABEL}),
        ("service.no_active_keys", {"service": timed}),
        ("service.no_active_keys", {"service": empty}),
    ]  # fmt: skip

    # rotate.lua: key.rotated (manual); next_key.lua: (usage); key_update.lua (disabled);
    # key_remove.lua (deleted)
    manual = slug + "m"
    await seed.service(redis, t, manual, policy="manual")
    m1 = await seed.key(redis, settings.keyring, t, manual, "sk-1")
    m2 = await seed.key(redis, settings.keyring, t, manual, "sk-2", max_daily=1)
    m3 = await seed.key(redis, settings.keyring, t, manual, "sk-3")
    await services.rotate(redis, Durability(), t.tenant, manual, now_ms=clock(), events_maxlen=1000)
    await store.next_key(t.client, manual, IP)
    await store.next_key(t.client, manual, IP)  # m2 is at its own limit: on to m3
    changes = {"now_ms": clock(), "events_maxlen": 1000}
    await services.update_key(redis, Durability(), t.tenant, manual, m2, active=False, **changes)
    await services.remove_key(redis, Durability(), t.tenant, manual, m3, **changes)
    rotated = [d for e, d in (await recorded(redis, t.tenant))[len(events) :] if e == "key.rotated"]
    assert [(d["from_key_id"], d["to_key_id"], d["reason"]) for d in rotated] == [
        (m1, m2, "manual"), (m2, m3, "usage"), (m2, m3, "disabled"), (m3, m1, "deleted"),
    ]  # fmt: skip
    assert {d["service"] for d in rotated} == {manual}


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
async def test_key_decrypt_failed_is_valid_json(store, redis, settings, slug):
    t = await seed.tenant(redis, events=ALL_EVENTS)
    await seed.service(redis, t, slug, policy="usage")
    kid = await seed.key(redis, settings.keyring, t, slug, "sk-u", label=HOSTILE_LABEL)
    delivery = await store.next_key(t.client, slug, IP)
    await store.refund(delivery)  # as the API does when the key cannot be decrypted
    assert await recorded(redis, t.tenant) == [
        ("key.decrypt_failed", {"service": slug, "key_id": kid, "label": HOSTILE_LABEL})
    ]
