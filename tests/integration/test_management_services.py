"""/v1/services: create, list, show, change, delete."""

from __future__ import annotations

import pytest

from rotator.store import keys
from tests.integration.management import deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def test_create_list_show(client, redis):
    t = await new_tenant(client)
    r = await client.post(
        "/v1/services",
        json={
            "slug": "openai",
            "policy": "time",
            "key_ttl_minutes": 30,
            "max_daily_requests": 1000,
        },
        headers=t.auth,
    )
    assert r.status_code == 201
    created = r.json()
    assert created == {
        "slug": "openai",
        "policy": "time",
        "max_daily_requests": 1000,
        "max_requests_per_minute": None,
        "limit_warning_percent": 80,
        "key_ttl_minutes": 30,
        "created_at": "2026-03-01T12:00:00.000Z",
        "keys": 0,
        "active_keys": 0,
        "keys_run_out_at": None,
        "cooldown_seconds": 60,
        "max_cooldown_seconds": 3600,
        "quota_reset_utc": "00:00",
        "failure_threshold": 5,
        "failure_window_seconds": 60,
        "breaker_cooldown_seconds": 30,
    }
    await new_service(client, t, slug="anthropic", policy="manual")
    listed = (await client.get("/v1/services", headers=t.auth)).json()
    assert [s["slug"] for s in listed] == ["anthropic", "openai"]
    assert (await client.get("/v1/services/openai", headers=t.auth)).json() == created
    assert await redis.sismember(keys.TIME_SERVICES, f"{t.id}:openai")


async def test_duplicate_slug_is_409(client, redis):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    r = await client.post(
        "/v1/services", json={"slug": "openai", "policy": "usage"}, headers=t.auth
    )
    assert r.status_code == 409 and "error" in r.json()
    assert (await client.get("/v1/services/openai", headers=t.auth)).json()["policy"] == "manual"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "usage"}, "slug"),
        ({"slug": "openai"}, "policy"),
        ({"slug": "Open AI", "policy": "usage"}, "slug"),
        ({"slug": "openai", "policy": "random"}, "policy"),
        ({"slug": "openai", "policy": "time"}, "key_ttl_minutes"),
        ({"slug": "openai", "policy": "time", "key_ttl_minutes": -5}, "key_ttl_minutes"),
        ({"slug": "openai", "policy": "usage", "key_ttl_minutes": 5}, "key_ttl_minutes"),
        ({"slug": "openai", "policy": "usage", "max_daily_requests": 0}, "max_daily_requests"),
        ({"slug": "openai", "policy": "usage", "max_daily_requests": 1.5}, "max_daily_requests"),
        ({"slug": "openai", "policy": "usage", "limit": 5}, "limit"),
    ],
)
async def test_create_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    r = await client.post("/v1/services", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert await redis.scard(keys.services(t.id)) == 0


async def test_patch_changes_policy_and_limits(client, redis):
    t = await new_tenant(client)
    await new_service(client, t, policy="usage")
    r = await client.patch(
        "/v1/services/openai", json={"policy": "time", "key_ttl_minutes": 10}, headers=t.auth
    )
    assert r.status_code == 200
    assert (r.json()["policy"], r.json()["key_ttl_minutes"]) == ("time", 10)
    assert await redis.sismember(keys.TIME_SERVICES, f"{t.id}:openai")

    r = await client.patch("/v1/services/openai", json={"max_daily_requests": 1}, headers=t.auth)
    assert r.json()["max_daily_requests"] == 1 and r.json()["policy"] == "time"
    await new_key(client, t)
    assert (await deliver(client, t.client_token)).status_code == 200
    assert (await deliver(client, t.client_token)).status_code == 429  # the new limit applies

    r = await client.patch(
        "/v1/services/openai", json={"max_daily_requests": None, "policy": "manual"}, headers=t.auth
    )
    assert r.json()["max_daily_requests"] is None and r.json()["key_ttl_minutes"] is None
    assert not await redis.sismember(keys.TIME_SERVICES, f"{t.id}:openai")
    assert (await deliver(client, t.client_token)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "time"}, "key_ttl_minutes"),  # entering time needs a ttl
        ({"key_ttl_minutes": 5}, "key_ttl_minutes"),  # a usage service has none
        ({"policy": "nope"}, "policy"),
        ({"max_daily_requests": -1}, "max_daily_requests"),
        ({"slug": "renamed"}, "slug"),  # immutable: ciphertexts are bound to it
    ],
)
async def test_patch_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    await new_service(client, t)
    # storage itself: a refused request writes nothing, not even a field no read shows
    before = await redis.hgetall(keys.service(t.id, "openai"))
    r = await client.patch("/v1/services/openai", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert await redis.hgetall(keys.service(t.id, "openai")) == before


async def test_unknown_service_is_404(client):
    t = await new_tenant(client)
    for method, body in (("GET", None), ("PATCH", {"max_daily_requests": 2}), ("DELETE", None)):
        kwargs = {"headers": t.auth} | ({"json": body} if body else {})
        r = await client.request(method, "/v1/services/nope", **kwargs)
        assert r.status_code == 404 and "error" in r.json()


async def test_delete_removes_service_and_keys(client, redis):
    t = await new_tenant(client)
    await new_service(client, t, policy="time", key_ttl_minutes=5)
    await new_key(client, t)
    r = await client.delete("/v1/services/openai", headers=t.auth)
    assert r.status_code == 204
    assert not await redis.exists(keys.service(t.id, "openai"))
    assert not await redis.sismember(keys.TIME_SERVICES, f"{t.id}:openai")
    assert (await client.get("/v1/services", headers=t.auth)).json() == []
    assert (await deliver(client, t.client_token)).json() == {"error": "unknown service"}
    # the slug is free again
    await new_service(client, t)


async def test_a_service_created_again_with_a_deleted_ones_slug_starts_from_nothing(client, clock):
    t = await new_tenant(client)
    await new_service(client, t, max_daily_requests=3, max_requests_per_minute=3)
    key_id = (await new_key(client, t))["id"]
    assert (await deliver(client, t.client_token)).status_code == 200
    clock.now_ms += 86_400_000
    for _ in range(3):
        assert (await deliver(client, t.client_token)).status_code == 200
    assert (await deliver(client, t.client_token)).status_code == 429
    body = {"service": "openai", "key_id": key_id, "status": 500}
    r = await client.post(
        "/v1/report", json=body, headers={"Authorization": f"Bearer {t.client_token}"}
    )
    assert r.status_code == 202

    assert (await client.delete("/v1/services/openai", headers=t.auth)).status_code == 204
    await new_service(client, t, max_daily_requests=3, max_requests_per_minute=3)
    new_id = (await new_key(client, t))["id"]
    usage = (await client.get("/v1/services/openai/usage?days=2", headers=t.auth)).json()
    assert [(d["total"], sum(d["reports"].values())) for d in usage["days"]] == [(0, 0), (0, 0)]
    # neither today's count nor the per-minute window of the deleted one: three again
    for _ in range(3):
        r = await deliver(client, t.client_token)
        assert (r.status_code, r.json()["meta"]["key_id"]) == (200, new_id)
    usage = (await client.get("/v1/services/openai/usage?days=2", headers=t.auth)).json()
    assert [d["total"] for d in usage["days"]] == [3, 0]
    assert usage["days"][0]["keys"] == [{"key_id": new_id, "label": "Primary", "deliveries": 3}]
