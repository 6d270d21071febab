"""Every management endpoint: a wrong or missing token is 401, another tenant's resource 404."""

from __future__ import annotations

import dataclasses

import pytest

from rotator.domain import tokens
from rotator.store import keys
from tests.integration.management import (
    OPERATOR,
    OPERATOR_ROUTES,
    TENANT_ROUTES,
    Tenant,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

pytestmark = pytest.mark.backends("single", "cluster")

# endpoints that address one of the owner's resources: invisible to any other tenant
RESOURCE_ROUTES = [e for e in TENANT_ROUTES if e[1].startswith(("/v1/services/", "/v1/apps/"))]


async def owner_with_resources(client) -> tuple[Tenant, dict[str, int]]:
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    app = await new_app(client, t)
    return t, {"key": key["id"], "app": app["id"]}


async def call(client, method, path, body, headers):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return await client.request(method, path, **kwargs)


def bad_admin_headers(t: Tenant) -> dict[str, dict[str, str]]:
    parsed = tokens.parse(t.admin_token)
    assert parsed is not None
    return {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {t.admin_token}"},
        "garbage": {"Authorization": "Bearer nonsense"},
        "client token": {"Authorization": f"Bearer {t.client_token}"},
        "wrong secret": {"Authorization": f"Bearer kta_{t.id}_{'A' * 43}"},
        "unknown tenant": {"Authorization": f"Bearer kta_0123456789abcdef_{'A' * 43}"},
        "operator token": OPERATOR,
    }


@pytest.mark.parametrize(("method", "path", "body"), TENANT_ROUTES)
async def test_tenant_endpoints_refuse_wrong_tokens(client, redis, method, path, body):
    t, ids = await owner_with_resources(client)
    path = path.format(**ids)
    before = await snapshot(redis)
    for why, headers in bad_admin_headers(t).items():
        r = await call(client, method, path, body, headers)
        assert r.status_code == 401, (why, r.text)
        assert set(r.json()) == {"error"}
    assert await snapshot(redis) == before  # nothing was written


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ROUTES)
async def test_operator_endpoints_refuse_wrong_tokens(client, method, path, body):
    t = await new_tenant(client)
    for headers in ({}, {"Authorization": "Bearer wrong"}, t.auth):
        r = await call(client, method, path.format(tenant=t.id), body, headers)
        assert r.status_code == 401, r.text
        assert "error" in r.json()
    assert (await client.get("/v1/tenant", headers=t.auth)).json()["suspended"] is False


async def test_operator_api_is_closed_without_an_admin_token(settings, redis, clock):
    from litestar.testing import AsyncTestClient

    from rotator.api.app import create_app

    app = create_app(dataclasses.replace(settings, admin_token=None), clock=clock)
    async with AsyncTestClient(app=app) as c:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            r = await c.post("/v1/admin/tenants", json={"name": "x"}, headers=headers)
            # a 401 saying what to do, not only that the token is wrong
            off = "the operator API is off: start the service with ROTATOR_ADMIN_TOKEN set"
            assert (r.status_code, r.json()) == (401, {"error": off})
    assert await redis.scard("kr:tenants") == 0


@pytest.mark.parametrize(("method", "path", "body"), RESOURCE_ROUTES)
async def test_other_tenants_resources_are_invisible(client, redis, method, path, body):
    owner, ids = await owner_with_resources(client)
    intruder = await new_tenant(client, name="intruder")
    before = await snapshot(redis, owner.id)
    r = await call(client, method, path.format(**ids), body, intruder.auth)
    assert r.status_code == 404, r.text
    assert await snapshot(redis, owner.id) == before


async def test_listings_show_only_the_callers_resources(client):
    owner, _ = await owner_with_resources(client)
    other = await new_tenant(client, name="other")
    assert (await client.get("/v1/services", headers=other.auth)).json() == []
    assert (await client.get("/v1/apps", headers=other.auth)).json() == []
    assert (await client.get("/v1/tenant", headers=other.auth)).json()["id"] == other.id
    r = await client.get("/v1/services/openai/keys", headers=other.auth)
    assert r.status_code == 404
    assert len((await client.get("/v1/services", headers=owner.auth)).json()) == 1


async def snapshot(redis, tenant: str | None = None) -> dict:
    """Every key (of one tenant, or all) with its type and content, to prove nothing changed."""
    pattern = "*" if tenant is None else "{t:" + tenant + "}*"
    out = {}
    async for key in redis.scan_iter(match=pattern):
        if key.startswith(keys.AUTH_FAILURES_PREFIX.encode()):
            continue  # refused requests are counted per IP (the audit log's abuse guard)
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "set":
            out[key] = await redis.smembers(key)
        elif kind == "string":
            out[key] = await redis.get(key)
        else:
            out[key] = kind
    return out
