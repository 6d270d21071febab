"""GET /v1/next when the picked key cannot be decrypted: 500, and nothing used up.

The delivery script counts before the API decrypts; the failure path refunds what it counted
(store/delivery.py refund, scripts/lua/delivery_refund.lua), so a 500 costs no quota (service,
app, key) and emits no key.delivered, and the operator gets key.decrypt_failed instead.
"""

from __future__ import annotations

import base64
import os

import pytest

from rotator.crypto import KeyRing, aad_for_key
from rotator.domain.clock import utc_day
from rotator.domain.models import EVENT_TYPES
from rotator.logs import Scope
from rotator.store import keys
from tests.integration.management import (
    SECRET,
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

DELIVERY_EVENTS = [t for t in EVENT_TYPES if not t.startswith("audit.")]
"""Every event but the audit log's (its own tests: test_audit_log.py)."""

pytestmark = pytest.mark.backends("single", "cluster")


async def subscribe_to_everything(client, t) -> None:
    body = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": DELIVERY_EVENTS}
    assert (await client.patch("/v1/tenant", json=body, headers=t.auth)).status_code == 200


async def seal(redis, ring: KeyRing, tenant: str, key_id: int) -> None:
    """Write key `key_id` of service openai sealed under `ring` (another master key: broken)."""
    blob = ring.seal(SECRET.encode(), aad_for_key(tenant, "openai", key_id))
    await redis.hset(keys.service(tenant, "openai"), f"c:{key_id}", blob)


def stranger() -> KeyRing:
    return KeyRing.parse(base64.b64encode(os.urandom(32)).decode())


async def counters(redis, tenant, clock) -> dict[str, int]:
    raw = await redis.hgetall(keys.usage(tenant, utc_day(clock())))
    return {k.decode(): int(v) for k, v in raw.items() if not k.startswith((b"df:", b"sdf:"))}


async def event_types(redis, tenant) -> list[str]:
    return [f[b"type"].decode() for _, f in await redis.xrange(keys.events(tenant))]


async def test_three_500s_use_up_none_of_a_limit_of_three(client, redis, settings, clock, caplog):
    t = await new_tenant(client)
    await subscribe_to_everything(client, t)
    await new_service(client, t, max_daily_requests=3)
    key = await new_key(client, t)
    await seal(redis, stranger(), t.id, key["id"])
    caplog.handler.addFilter(Scope())  # as the app's log handler does: the request's scope

    answered = []
    for _ in range(3):
        r = await deliver(client, t.client_token)
        assert (r.status_code, r.json()) == (500, {"error": "key decrypt failed"})
        answered.append(r.headers["x-request-id"])

    assert await counters(redis, t.id, clock) == {}
    assert await event_types(redis, t.id) == ["key.decrypt_failed"]
    [today] = (await client.get("/v1/services/openai/usage?days=1", headers=t.auth)).json()["days"]
    assert (today["total"], today["keys"][0]["deliveries"]) == (0, 0)
    logged = [rec for rec in caplog.records if "decrypt failed" in rec.getMessage()]
    assert [rec.getMessage() for rec in logged] == [
        f"decrypt failed: tenant={t.id} service=openai key_id={key['id']}"
    ] * 3
    # each line names the request the client was answered for
    assert [(rec.request_id, rec.tenant) for rec in logged] == [(rid, t.id) for rid in answered]

    # the operator fixes the key: the whole day's quota is there
    await seal(redis, settings.keyring, t.id, key["id"])
    bodies = [(await deliver(client, t.client_token)).json() for _ in range(3)]
    assert [b["meta"]["usage_today"] for b in bodies] == [1, 2, 3]
    assert (await deliver(client, t.client_token)).status_code == 429
    assert await event_types(redis, t.id) == [
        "key.decrypt_failed",
        "key.delivered",
        "key.delivered",
        "service.limit_reached",
        "key.delivered",
    ]


async def test_an_app_token_500_uses_up_none_of_the_apps_limit(client, redis, settings, clock):
    t = await new_tenant(client)
    await subscribe_to_everything(client, t)
    await new_service(client, t, max_daily_requests=3)
    key = await new_key(client, t)
    app = await new_app(client, t, max_daily_requests=2)
    await seal(redis, stranger(), t.id, key["id"])

    for _ in range(3):
        assert (await deliver(client, app["app_token"])).status_code == 500
    assert await counters(redis, t.id, clock) == {}
    assert "key.delivered" not in await event_types(redis, t.id)

    await seal(redis, settings.keyring, t.id, key["id"])
    assert [(await deliver(client, app["app_token"])).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert (await deliver(client, t.client_token)).json()["meta"]["usage_today"] == 3
    assert (await deliver(client, t.client_token)).status_code == 429
    assert await counters(redis, t.id, clock) == {
        f"k:{key['id']}": 3,
        "s:openai": 3,
        f"a:{app['id']}": 2,
        f"lra:{app['id']}:2": 1,
        "lr:openai:3": 1,
    }


@pytest.mark.parametrize("policy", ["usage", "round_robin", "weighted", "least_recently_used"])
async def test_a_broken_key_does_not_take_every_request_of_a_pool(client, redis, policy):
    # rotation.md: a refunded delivery's step is not taken back, "so the next request gets the
    # next key rather than the one that failed". The usage policy's step is the key's count,
    # which the refund takes back: the broken key stays the least used and is picked forever
    t = await new_tenant(client)
    await new_service(client, t, policy=policy)
    broken = await new_key(client, t)
    good = await new_key(client, t, label="Backup")
    await seal(redis, stranger(), t.id, broken["id"])

    answers = [await deliver(client, t.client_token) for _ in range(4)]
    assert [r.status_code for r in answers].count(500) <= 2
    assert {r.json()["meta"]["key_id"] for r in answers if r.status_code == 200} == {good["id"]}


async def test_deleting_a_service_drops_its_decrypt_failures_of_today(client, redis, clock):
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    await seal(redis, stranger(), t.id, key["id"])
    assert (await deliver(client, t.client_token)).status_code == 500
    today = keys.usage(t.id, utc_day(clock()))
    assert set(await redis.hkeys(today)) == {f"df:{key['id']}".encode(), b"sdf:openai"}

    assert (await client.delete("/v1/services/openai", headers=t.auth)).status_code == 204
    # a service created again with this slug starts from nothing, its usage ranking too
    assert await redis.hkeys(today) == []
