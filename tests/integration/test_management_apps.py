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
        "suspended": False,
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
    allow = ["198.51.100.7", "2001:db8::/32", "::ffff:198.51.100.8", "::ffff:198.51.100.0/120"]
    app = await new_app(client, t, ip_allowlist=allow)
    # an IPv4-mapped entry shows its IPv4 address, not ::ffff:c633:6408
    assert app["ip_allowlist"] == [
        "198.51.100.7/32", "2001:db8::/32", "::ffff:198.51.100.8/128", "::ffff:198.51.100.0/120"
    ]  # fmt: skip
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


# --- an app's lifecycle: show, edit, suspend, new token (issue #12 item 2) ---------------------
async def test_show_and_edit(client, redis):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t, max_daily_requests=1)
    r = await client.get(f"/v1/apps/{app['id']}", headers=t.auth)
    assert r.status_code == 200
    assert r.json() == {k: v for k, v in app.items() if k != "app_token"}

    assert (await app_deliver(client, app["app_token"])).status_code == 200
    assert (await app_deliver(client, app["app_token"])).status_code == 429  # its own limit
    r = await client.patch(
        f"/v1/apps/{app['id']}",
        json={"name": " batch ", "max_daily_requests": None, "ip_allowlist": ["127.0.0.1"]},
        headers=t.auth,
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert (edited["name"], edited["max_daily_requests"], edited["ip_allowlist"]) == (
        "batch", None, ["127.0.0.1/32"],
    )  # fmt: skip
    assert (await client.get(f"/v1/apps/{app['id']}", headers=t.auth)).json() == edited
    assert (await app_deliver(client, app["app_token"])).status_code == 200  # no limit now
    r = await client.patch(f"/v1/apps/{app['id']}", json={"ip_allowlist": ["10.0.0.0/8"]},
                           headers=t.auth)  # fmt: skip
    assert r.status_code == 200
    r = await app_deliver(client, app["app_token"])
    assert (r.status_code, r.json()) == (403, {"error": "ip not allowed"})
    r = await client.patch(f"/v1/apps/{app['id']}", json={"ip_allowlist": []}, headers=t.auth)
    assert r.json()["ip_allowlist"] == []
    assert (await app_deliver(client, app["app_token"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"ip_allowlist": ["300.1.1.1"]}, "ip_allowlist"),
        ({"max_daily_requests": 0}, "max_daily_requests"),
        ({"suspended": "yes"}, "suspended"),
        ({"token": "mine"}, "token"),
    ],
)
async def test_edit_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    app = await new_app(client, t)
    # storage itself: a refused request writes nothing, not even a field no read shows
    before = await redis.hgetall(keys.app(t.id, app["id"]))
    r = await client.patch(f"/v1/apps/{app['id']}", json=body, headers=t.auth)
    assert r.status_code == 400 and field in r.json()["error"], r.text
    assert await redis.hgetall(keys.app(t.id, app["id"])) == before


async def test_a_suspended_apps_token_is_refused_until_resumed(client):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t)
    other = await new_app(client, t, name="other")
    r = await client.patch(f"/v1/apps/{app['id']}", json={"suspended": True}, headers=t.auth)
    assert r.status_code == 200 and r.json()["suspended"] is True
    r = await app_deliver(client, app["app_token"])
    assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
    assert (await app_deliver(client, other["app_token"])).status_code == 200
    assert (await client.get("/v1/next", params={"service": "openai", "token": t.client_token})
            ).status_code == 200  # fmt: skip
    listed = {
        a["id"]: a["suspended"] for a in (await client.get("/v1/apps", headers=t.auth)).json()
    }
    assert listed == {app["id"]: True, other["id"]: False}
    # a new token for a suspended app stays refused until the app is resumed
    fresh = (await client.post(f"/v1/apps/{app['id']}/token", headers=t.auth)).json()["app_token"]
    assert (await app_deliver(client, fresh)).status_code == 403
    await client.patch(f"/v1/apps/{app['id']}", json={"suspended": False}, headers=t.auth)
    assert (await app_deliver(client, fresh)).status_code == 200


async def test_a_new_token_revokes_the_old_one(client, redis):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t)
    r = await client.post(f"/v1/apps/{app['id']}/token", headers=t.auth)
    assert r.status_code == 200 and set(r.json()) == {"app_token"}
    fresh = r.json()["app_token"]
    parsed = tokens.parse(fresh)
    assert (parsed.kind, parsed.tenant, parsed.app) == (tokens.APP, t.id, str(app["id"]))
    assert fresh != app["app_token"]
    r = await app_deliver(client, app["app_token"])
    assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
    assert (await app_deliver(client, fresh)).status_code == 200
    shown = await client.get(f"/v1/apps/{app['id']}", headers=t.auth)
    # storage itself too: the token is kept only as a hash
    assert fresh not in shown.text and fresh.encode() not in b"".join(
        (await redis.hgetall(keys.app(t.id, app["id"]))).values()
    )


async def test_unknown_or_deleted_apps_are_404_and_not_recreated(client, redis):
    t = await new_tenant(client)
    app = await new_app(client, t)
    await client.delete(f"/v1/apps/{app['id']}", headers=t.auth)
    for method, path, body in (
        ("GET", f"/v1/apps/{app['id']}", None),
        ("PATCH", f"/v1/apps/{app['id']}", {"name": "back"}),
        ("POST", f"/v1/apps/{app['id']}/token", None),
        ("GET", "/v1/apps/999", None),
        ("PATCH", "/v1/apps/999", {"suspended": True}),
        ("POST", "/v1/apps/999/token", None),
    ):
        r = await client.request(method, path, json=body, headers=t.auth)
        assert (r.status_code, r.json()) == (404, {"error": "app not found"}), (method, path)
    assert not await redis.exists(keys.app(t.id, app["id"]), keys.app(t.id, 999))
