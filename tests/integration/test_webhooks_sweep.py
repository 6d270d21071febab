"""The expiry sweep cron over kr:time_services, with an injected clock, down to the webhook."""

from __future__ import annotations

import json

from rotator.domain.clock import FakeClock
from rotator.store import keys
from tests.conftest import T0_MS
from tests.integration.webhook_support import FAST, deliver_all, verify_signature, webhook_tenant
from tests.lua import seed
from workers.sweep import sweep_time_services

TTL_MIN = 5


async def time_service(redis, settings, t, slug, *, entered_ms):
    await seed.service(redis, t, slug, policy="time", ttl_minutes=TTL_MIN)
    key_id = await seed.key(redis, settings.keyring, t, slug, "sk-1", label=f"{slug} key")
    await redis.hset(keys.service(t.tenant, slug), f"t:{key_id}", entered_ms)
    await redis.sadd(keys.TIME_SERVICES, keys.time_service_member(t.tenant, slug))
    return key_id


async def test_sweep_marks_notifies_and_the_webhook_arrives(settings, redis, receiver):
    t, secret = await webhook_tenant(redis, settings.keyring, receiver.url)
    other, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    expiring = await time_service(redis, settings, t, "openai", entered_ms=T0_MS)
    await time_service(redis, settings, other, "stripe", entered_ms=T0_MS + 60_000)
    await redis.sadd(keys.TIME_SERVICES, keys.time_service_member(t.tenant, "deleted"))
    clock = FakeClock(T0_MS)
    ctx = {"settings": settings, "config": FAST, "data": redis, "clock": clock}

    clock.advance(minutes=TTL_MIN, ms=-1)
    assert await sweep_time_services(ctx) == 0
    clock.advance(ms=1)  # t's key expires now; other's a minute later
    assert await sweep_time_services(ctx) == 1
    assert await sweep_time_services(ctx) == 0  # once per key

    await deliver_all(settings, redis)

    kinds = {}
    for request in receiver.received:
        assert verify_signature(secret, request.headers, request.body)
        body = json.loads(request.body)
        kinds[body["type"]] = body
    assert set(kinds) == {"key.expired", "service.no_active_keys"}
    assert kinds["key.expired"]["tenant"] == t.tenant
    assert kinds["key.expired"]["data"] == {
        "service": "openai",
        "key_id": expiring,
        "label": "openai key",
    }
    assert kinds["service.no_active_keys"]["data"] == {"service": "openai"}

    clock.advance(minutes=1)
    assert await sweep_time_services(ctx) == 1  # other's key now
