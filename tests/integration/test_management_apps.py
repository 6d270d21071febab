"""/v1/apps: per-app tokens with their own allowlist and daily limit."""

from __future__ import annotations

import pytest

from rotator.domain import tokens
from rotator.store import keys
from tests.integration.management import new_app, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def app_deliver(client, app_token):
    return await client.get("/v1/next", params={"service": "openai", "app_token": app_token})


async def test_create_list_delete(client, redis):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    r = await client.post("/v1/apps", json={"name": "web", "max_daily_requests": 2}, headers=t.auth)
    assert r.status_code == 201
    app = r.json()
    assert app == {
        "id": app["id"],
        "name": "web",
        "ip_allowlist": [],
        "max_daily_requests": 2,
        "created_at": "2026-03-01T12:00:00.000Z",
        "app_token": app["app_token"],
    }
    parsed = tokens.parse(app["app_token"])
    assert (parsed.kind, parsed.tenant, parsed.app) == (tokens.APP, t.id, str(app["id"]))

    listed = (await client.get("/v1/apps", headers=t.auth)).json()
    assert [a["id"] for a in listed] == [app["id"]]
    assert "app_token" not in listed[0] and app["app_token"] not in str(listed)

    # the app's own limit applies to its token
    assert (await app_deliver(client, app["app_token"])).status_code == 200
    assert (await app_deliver(client, app["app_token"])).status_code == 200
    assert (await app_deliver(client, app["app_token"])).status_code == 429

    r = await client.delete(f"/v1/apps/{app['id']}", headers=t.auth)
    assert r.status_code == 204
    assert (await client.get("/v1/apps", headers=t.auth)).json() == []
    assert not await redis.exists(keys.app(t.id, app["id"]))
    r = await app_deliver(client, app["app_token"])  # revoked with the delete
    assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
    assert (await client.delete(f"/v1/apps/{app['id']}", headers=t.auth)).status_code == 404


async def test_app_allowlist(client):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t, ip_allowlist=["198.51.100.7", "2001:db8::/32"])
    assert app["ip_allowlist"] == ["198.51.100.7/32", "2001:db8::/32"]
    r = await app_deliver(client, app["app_token"])  # the test client is outside both
    assert (r.status_code, r.json()) == (403, {"error": "ip not allowed"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "web", "ip_allowlist": ["300.1.1.1"]}, "ip_allowlist"),
        ({"name": "web", "ip_allowlist": [1]}, "ip_allowlist"),
        ({"name": "web", "max_daily_requests": 0}, "max_daily_requests"),
        ({"name": "web", "token": "mine"}, "token"),
    ],
)
async def test_create_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    r = await client.post("/v1/apps", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert await redis.scard(keys.apps(t.id)) == 0


async def test_unknown_app_is_404(client):
    t = await new_tenant(client)
    assert (await client.delete("/v1/apps/12345", headers=t.auth)).status_code == 404
    assert (await client.delete("/v1/apps/not-a-number", headers=t.auth)).status_code == 404
