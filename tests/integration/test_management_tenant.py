"""Operator endpoints and a tenant's own settings: /v1/admin/tenants, /v1/tenant."""

from __future__ import annotations

import pytest

from rotator.domain import tokens
from rotator.domain.models import DEFAULT_EVENTS
from rotator.store import keys
from tests.integration.management import (
    OPERATOR,
    deliver,
    new_key,
    new_service,
    new_tenant,
)
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")


async def test_operator_creates_and_lists_tenants(client, redis):
    r = await client.post(
        "/v1/admin/tenants", json={"name": "Acme", "demo": True}, headers=OPERATOR
    )
    assert r.status_code == 201
    body = r.json()
    assert {"id", "name", "demo", "admin_token", "client_token"} <= set(body)
    assert body["name"] == "Acme" and body["demo"] is True
    admin, client_token = tokens.parse(body["admin_token"]), tokens.parse(body["client_token"])
    assert admin.kind == tokens.ADMIN and admin.tenant == body["id"]
    assert client_token.kind == tokens.CLIENT and client_token.tenant == body["id"]
    assert body["admin_token"] != body["client_token"]

    listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    assert listed == [
        {
            "id": body["id"],
            "name": "Acme",
            "demo": True,
            "suspended": False,
            "created_at": "2026-03-01T12:00:00.000Z",
            "services": 0,
            "keys": 0,
            "apps": 0,
            "deliveries_today": 0,
        }
    ]
    # the tokens are never shown again, by any endpoint
    for r in (
        await client.get("/v1/admin/tenants", headers=OPERATOR),
        await client.get("/v1/tenant", headers={"Authorization": f"Bearer {body['admin_token']}"}),
    ):
        assert body["admin_token"] not in r.text and body["client_token"] not in r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "demo": "yes"}, "demo"),
        ({"name": "x", "admin": True}, "admin"),  # unknown fields are refused, not ignored
    ],
)
async def test_operator_create_rejects_bad_input(client, redis, body, field):
    r = await client.post("/v1/admin/tenants", json=body, headers=OPERATOR)
    assert r.status_code == 400
    assert field in r.json()["error"]
    assert await redis.scard(keys.TENANTS) == 0


async def test_malformed_json_is_400(client):
    r = await client.post(
        "/v1/admin/tenants",
        content=b"{not json",
        headers={**OPERATOR, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "error" in r.json()


async def test_get_tenant_settings(client):
    t = await new_tenant(client, demo=True)
    r = await client.get("/v1/tenant", headers=t.auth)
    assert r.status_code == 200
    assert r.json() == {
        "id": t.id,
        "name": "acme",
        "demo": True,
        "suspended": False,
        "created_at": "2026-03-01T12:00:00.000Z",
        "ip_allowlist": [],
        "webhook_url": None,
        "webhook_events": [],
        "webhook_secret_set": False,
    }


async def test_patch_webhook_generates_the_secret_once(client, redis):
    t = await new_tenant(client)
    r = await client.patch(
        "/v1/tenant", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=t.auth
    )
    assert r.status_code == 200
    body = r.json()
    assert body["webhook_url"] == "http://127.0.0.1:9/hook"
    assert body["webhook_events"] == list(DEFAULT_EVENTS)
    secret = body["webhook_secret"]
    assert secret.startswith("whsec_") and body["webhook_secret_set"]
    assert await redis.sismember(keys.WEBHOOK_TENANTS, t.id)

    for r in (
        await client.get("/v1/tenant", headers=t.auth),
        await client.patch(
            "/v1/tenant", json={"webhook_events": ["key.delivered"]}, headers=t.auth
        ),
    ):
        assert r.status_code == 200
        assert "webhook_secret" not in r.json() and secret not in r.text
    assert r.json()["webhook_events"] == ["key.delivered"]
    # storage itself: the delivery script tests membership as ",type," in this field
    assert await redis.hget(keys.tenant(t.id), "events") == b",key.delivered,"


async def test_patch_webhook_with_own_secret_and_removal(client, redis):
    t = await new_tenant(client)
    own = "whsec_" + "QUJD" * 8  # base64 of 24 bytes
    r = await client.patch(
        "/v1/tenant",
        json={
            "webhook_url": "http://127.0.0.1:9/h",
            "webhook_secret": own,
            "webhook_events": ["key.expired"],
        },
        headers=t.auth,
    )
    assert r.status_code == 200
    assert "webhook_secret" not in r.json() and r.json()["webhook_events"] == ["key.expired"]
    # storage itself: the secret is sealed at rest
    assert own.encode() not in await redis.hget(keys.tenant(t.id), "wh_secret")

    r = await client.patch("/v1/tenant", json={"webhook_url": None}, headers=t.auth)
    assert r.json()["webhook_url"] is None and r.json()["webhook_events"] == []
    shown = (await client.get("/v1/tenant", headers=t.auth)).json()
    assert shown["webhook_url"] is None and shown["webhook_events"] == []
    assert not await redis.sismember(keys.WEBHOOK_TENANTS, t.id)


async def test_private_webhook_urls_are_refused_unless_allowed(settings, redis, clock):
    import dataclasses

    from litestar.testing import AsyncTestClient

    from rotator.api.app import create_app

    strict = dataclasses.replace(settings, webhook_allow_private=False)
    async with AsyncTestClient(app=create_app(strict, clock=clock)) as c:
        t = await new_tenant(c)
        r = await c.patch("/v1/tenant", json={"webhook_url": "http://127.0.0.1/h"}, headers=t.auth)
        assert r.status_code == 400 and r.json()["field"] == "webhook_url"
        assert (await c.get("/v1/tenant", headers=t.auth)).json()["webhook_url"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ip_allowlist": ["not-an-ip"]}, "ip_allowlist"),
        ({"ip_allowlist": "10.0.0.0/8"}, "ip_allowlist"),
        ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
        # what no HTTP request line can carry: the worker could never deliver to it
        ({"webhook_url": "http://127.0.0.1:9/a\r\nX-Evil: 1"}, "webhook_url"),
        ({"webhook_url": "http://127.0.0.1:9/a\x00b"}, "webhook_url"),
        ({"webhook_url": "http://exa mple.com/h"}, "webhook_url"),
        ({"webhook_url": "http://127.0.0.1:9/" + "a" * 2100}, "webhook_url"),
        (
            {"webhook_url": "http://127.0.0.1/h", "webhook_events": ["key.exploded"]},
            "webhook_events",
        ),
        ({"webhook_events": ["key.expired"]}, "webhook_events"),
        ({"webhook_secret": "plain"}, "webhook_secret"),
        ({"name": "   "}, "name"),
        ({"demo": False}, "demo"),  # demo is the operator's decision: not a tenant setting
    ],
)
async def test_patch_tenant_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    # storage itself: a refused request writes nothing, not even a field no read shows
    before = await redis.hgetall(keys.tenant(t.id))
    r = await client.patch("/v1/tenant", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert await redis.hgetall(keys.tenant(t.id)) == before


async def test_ip_allowlist_applies_to_deliveries(client):
    """On every service: those created before the change and after it (each service hash
    holds a copy of the allowlist, written with the tenant's by one script)."""
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    assert (await deliver(client, t.client_token)).status_code == 200
    r = await client.patch("/v1/tenant", json={"ip_allowlist": ["203.0.113.0/24"]}, headers=t.auth)
    assert r.json()["ip_allowlist"] == ["203.0.113.0/24"]
    await new_service(client, t, "later")
    await new_key(client, t, "later")
    for service in ("openai", "later"):
        r = await deliver(client, t.client_token, service)  # the test client: not 203.0.113/24
        assert (r.status_code, r.json()) == (403, {"error": "ip not allowed"})
    await client.patch("/v1/tenant", json={"ip_allowlist": []}, headers=t.auth)
    for service in ("openai", "later"):
        assert (await deliver(client, t.client_token, service)).status_code == 200


async def test_new_client_token_revokes_the_old_one_at_once(client):
    """On every service, including one created after the new token."""
    t = await new_tenant(client)
    for slug in ("openai", "anthropic"):
        await new_service(client, t, slug)
        await new_key(client, t, slug)
    assert (await deliver(client, t.client_token)).status_code == 200
    r = await client.post("/v1/tenant/client-token", headers=t.auth)
    assert r.status_code == 200
    fresh = r.json()["client_token"]
    assert fresh != t.client_token and tokens.parse(fresh).tenant == t.id
    await new_service(client, t, "later")
    await new_key(client, t, "later")
    for service in ("openai", "anthropic", "later"):
        assert (await deliver(client, t.client_token, service)).json() == {"error": "invalid token"}
        assert (await deliver(client, fresh, service)).status_code == 200


async def test_webhook_events_choose_what_deliveries_record(client, redis):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    await deliver(client, t.client_token)
    assert await redis.xlen(keys.events(t.id)) == 0  # no webhook: nothing recorded
    body = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": ["key.delivered"]}
    assert (await client.patch("/v1/tenant", json=body, headers=t.auth)).status_code == 200
    await deliver(client, t.client_token)
    assert [e[1][b"type"] for e in await redis.xrange(keys.events(t.id))] == [b"key.delivered"]
    await client.patch("/v1/tenant", json={"webhook_url": None}, headers=t.auth)
    await deliver(client, t.client_token)
    assert await redis.xlen(keys.events(t.id)) == 1


async def test_openapi_documents_the_management_api(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    for path in (
        "/v1/admin/tenants",
        "/v1/tenant",
        "/v1/tenant/client-token",
        "/v1/services",
        "/v1/services/{slug}",
        "/v1/services/{slug}/keys",
        "/v1/services/{slug}/keys/{key_id}",
        "/v1/apps",
        "/v1/apps/{app_id}",
    ):
        assert path in paths


async def test_webhook_url_with_credentials_is_refused(client, redis):
    t = await new_tenant(client)
    url = "http://hook-user:hook-password@127.0.0.1:9/hook"
    r = await client.patch("/v1/tenant", json={"webhook_url": url}, headers=t.auth)
    assert r.status_code == 400
    assert r.json()["field"] == "webhook_url"
    assert "webhook_secret" in r.json()["error"] and "hook-password" not in r.text
    assert (await client.get("/v1/tenant", headers=t.auth)).json()["webhook_url"] is None


async def test_stored_webhook_url_credentials_are_never_shown(client, redis):
    """A URL stored by an earlier version, credentials and all: shown redacted."""
    t = await new_tenant(client)
    r = await client.patch(
        "/v1/tenant", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=t.auth
    )
    assert r.status_code == 200
    await seed.tenant_fields(redis, t.id, wh_url="http://hook-user:hook-password@127.0.0.1:9/hook")
    for r in (
        await client.get("/v1/tenant", headers=t.auth),
        await client.patch("/v1/tenant", json={"name": "renamed"}, headers=t.auth),
    ):
        assert r.status_code == 200
        assert r.json()["webhook_url"] == "http://hook-user:***@127.0.0.1:9/hook"
        assert "hook-password" not in r.text


async def test_a_write_that_takes_no_body_refuses_one_and_changes_nothing(client):
    """A chosen admin token sent along is not silently dropped while a random one replaces
    the caller's; the same for every write that takes no body."""
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    await new_key(client, t)
    for method, path, headers in (
        ("POST", "/v1/tenant/admin-token", t.auth),
        ("POST", f"/v1/admin/tenants/{t.id}/admin-token", OPERATOR),
        ("POST", "/v1/services/openai/rotate", t.auth),
    ):
        r = await client.request(
            method, path, headers=headers, json={"admin_token": "my-chosen-admin-token-123456"}
        )
        assert (r.status_code, r.json()) == (
            400, {"error": "request body: this request takes none; send it without a body"}
        ), path  # fmt: skip
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 200  # still valid
    # without a body, or with an empty one, as before
    r = await client.post("/v1/tenant/admin-token", headers=t.auth, content=b"")
    assert r.status_code == 200 and r.json()["admin_token"] != t.admin_token
