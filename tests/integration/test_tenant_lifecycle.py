"""A tenant's life as the operator runs it, over HTTP: list with counts, show, rename,
suspend and resume, reissue the admin token, delete (issue #12 item 1)."""

from __future__ import annotations

import pytest

from rotator.domain.clock import utc_day
from rotator.store import keys
from tests.conftest import T0_MS
from tests.integration.management import (
    OPERATOR,
    Tenant,
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

pytestmark = pytest.mark.backends("single", "cluster")


async def app_deliver(client, app_token: str):
    return await client.get("/v1/next", params={"service": "openai", "app_token": app_token})


async def busy_tenant(client, name: str = "acme") -> tuple[Tenant, dict]:
    """A tenant with two services, three keys, an app and two deliveries today."""
    t = await new_tenant(client, name=name)
    await new_service(client, t)
    await new_service(client, t, slug="stripe", policy="manual")
    await new_key(client, t)
    await new_key(client, t, label="Backup")
    await new_key(client, t, slug="stripe")
    app = await new_app(client, t)
    assert (await deliver(client, t.client_token)).status_code == 200
    assert (await app_deliver(client, app["app_token"])).status_code == 200
    return t, app


# --- list and show ----------------------------------------------------------------------------
async def test_the_list_counts_each_tenants_resources(client, clock):
    busy, _ = await busy_tenant(client)
    idle = await new_tenant(client, name="idle")
    listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    assert {t["id"]: (t["services"], t["keys"], t["apps"], t["deliveries_today"])
            for t in listed} == {busy.id: (2, 3, 1, 2), idle.id: (0, 0, 0, 0)}  # fmt: skip
    assert all(t["suspended"] is False for t in listed)
    # deliveries are today's: a UTC day later they are 0 again
    clock.advance(minutes=24 * 60)
    listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    row = next(t for t in listed if t["id"] == busy.id)
    assert row["deliveries_today"] == 0 and row["keys"] == 3


async def test_the_list_is_oldest_first(client, clock):
    first = await new_tenant(client, name="first")
    clock.advance(s=1)
    second = await new_tenant(client, name="second")
    listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    assert [t["id"] for t in listed] == [first.id, second.id]


async def test_show_gives_settings_and_counts(client):
    t, _ = await busy_tenant(client)
    await client.patch("/v1/tenant", json={"ip_allowlist": ["10.0.0.0/8"]}, headers=t.auth)
    r = await client.get(f"/v1/admin/tenants/{t.id}", headers=OPERATOR)
    assert r.status_code == 200, r.text
    shown = r.json()
    settings = (await client.get("/v1/tenant", headers=t.auth)).json()
    assert {k: shown[k] for k in settings} == settings  # the tenant's own view, and more
    assert (shown["services"], shown["keys"], shown["apps"], shown["deliveries_today"]) == (
        2, 3, 1, 2,
    )  # fmt: skip
    assert t.admin_token not in r.text and t.client_token not in r.text


@pytest.mark.parametrize("tenant_id", ["0123456789abcdef", "NOT-AN-ID", "x" * 40])
async def test_unknown_tenants_are_404(client, tenant_id):
    for method, path, body in (
        ("GET", f"/v1/admin/tenants/{tenant_id}", None),
        ("PATCH", f"/v1/admin/tenants/{tenant_id}", {"name": "x"}),
        ("POST", f"/v1/admin/tenants/{tenant_id}/admin-token", None),
        ("DELETE", f"/v1/admin/tenants/{tenant_id}?confirm={tenant_id}", None),
    ):
        r = await client.request(method, path, json=body, headers=OPERATOR)
        assert (r.status_code, r.json()) == (404, {"error": "tenant not found"}), (method, r.text)


# --- rename -----------------------------------------------------------------------------------
async def test_rename(client, redis):
    t = await new_tenant(client)
    r = await client.patch(f"/v1/admin/tenants/{t.id}", json={"name": " Acme Ltd "},
                           headers=OPERATOR)  # fmt: skip
    assert r.status_code == 200 and r.json()["name"] == "Acme Ltd"
    assert (await client.get("/v1/tenant", headers=t.auth)).json()["name"] == "Acme Ltd"
    for body, field in (({"name": ""}, "name"), ({"suspended": "yes"}, "suspended"),
                        ({"demo": True}, "demo")):  # fmt: skip
        r = await client.patch(f"/v1/admin/tenants/{t.id}", json=body, headers=OPERATOR)
        assert r.status_code == 400 and field in r.json()["error"], r.text
    assert (await client.get("/v1/tenant", headers=t.auth)).json()["name"] == "Acme Ltd"


async def test_the_operator_gives_each_tenant_its_own_name(client):
    """The CLI finds tenants by name: the operator cannot create or rename a second `acme`.
    A tenant renaming itself is not checked: it must not learn other tenants' names."""
    first = await new_tenant(client, "acme")
    taken = {"error": f"name already used by tenant {first.id}", "field": "name"}
    r = await client.post("/v1/admin/tenants", json={"name": "acme"}, headers=OPERATOR)
    assert (r.status_code, r.json()) == (409, taken)
    second = await new_tenant(client, "globex")
    r = await client.patch(f"/v1/admin/tenants/{second.id}", json={"name": " acme"},
                           headers=OPERATOR)  # fmt: skip
    assert (r.status_code, r.json()) == (409, taken)
    r = await client.patch(f"/v1/admin/tenants/{first.id}", json={"name": "acme"},
                           headers=OPERATOR)  # fmt: skip
    assert r.status_code == 200  # its own name again
    r = await client.patch("/v1/tenant", json={"name": "acme"}, headers=second.auth)
    assert r.status_code == 200 and r.json()["name"] == "acme"
    listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    assert [t["name"] for t in listed] == ["acme", "acme"]


# --- suspend and resume -----------------------------------------------------------------------
async def suspend(client, t: Tenant, suspended: bool = True) -> dict:
    r = await client.patch(
        f"/v1/admin/tenants/{t.id}", json={"suspended": suspended}, headers=OPERATOR
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_suspended_tenants_tokens_are_refused_at_once(client):
    t, app = await busy_tenant(client)
    assert (await suspend(client, t))["suspended"] is True
    for r in (
        await deliver(client, t.client_token),
        await deliver(client, t.client_token, service="stripe"),
        await deliver(client, t.client_token, service="nosuch"),  # no hint of a valid token
        await app_deliver(client, app["app_token"]),
    ):
        assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
    (row,) = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    assert row["suspended"] is True and row["deliveries_today"] == 2  # none counted

    assert (await suspend(client, t, False))["suspended"] is False
    assert (await deliver(client, t.client_token)).status_code == 200
    assert (await app_deliver(client, app["app_token"])).status_code == 200


async def test_a_suspended_tenant_reads_but_cannot_write(client, redis):
    t, app = await busy_tenant(client)
    await suspend(client, t)
    for path in ("/v1/tenant", "/v1/services", "/v1/services/openai/keys", "/v1/apps",
                 f"/v1/apps/{app['id']}", "/v1/services/openai/usage"):  # fmt: skip
        assert (await client.get(path, headers=t.auth)).status_code == 200, path
    assert (await client.get("/v1/tenant", headers=t.auth)).json()["suspended"] is True
    before = await redis.hgetall(keys.tenant(t.id))
    for method, path, body in (
        ("PATCH", "/v1/tenant", {"name": "x"}),
        ("POST", "/v1/tenant/client-token", None),
        ("POST", "/v1/tenant/admin-token", None),
        ("POST", "/v1/services", {"slug": "other", "policy": "usage"}),
        ("DELETE", "/v1/services/openai", None),
        ("POST", "/v1/services/openai/keys", {"label": "k", "secret": "sk-x"}),
        ("POST", "/v1/apps", {"name": "a"}),
        ("PATCH", f"/v1/apps/{app['id']}", {"suspended": False}),
        ("DELETE", f"/v1/apps/{app['id']}", None),
    ):
        r = await client.request(method, path, json=body, headers=t.auth)
        assert (r.status_code, r.json()) == (403, {"error": "tenant suspended"}), (method, path)
    assert await redis.hgetall(keys.tenant(t.id)) == before
    assert len((await client.get("/v1/services", headers=t.auth)).json()) == 2
    # the body of a refused write is never read: a malformed one gets the same answer
    r = await client.post("/v1/services", content=b"{nope", headers=t.auth)
    assert (r.status_code, r.json()) == (403, {"error": "tenant suspended"})


async def test_suspension_keeps_the_data_and_a_client_token_issued_meanwhile(client, redis):
    t, _ = await busy_tenant(client)
    await suspend(client, t)
    # the operator (store/CLI) may issue a client token for a suspended tenant: it is held
    from rotator.store import tenants
    from rotator.store.connection import Durability

    fresh = (await tenants.issue_client_token(redis, Durability(), t.id)).client_token
    assert (await deliver(client, fresh)).status_code == 403
    await suspend(client, t, False)
    assert (await deliver(client, fresh)).status_code == 200
    assert (await deliver(client, t.client_token)).status_code == 403  # replaced
    shown = (await client.get(f"/v1/admin/tenants/{t.id}", headers=OPERATOR)).json()
    assert (shown["services"], shown["keys"], shown["apps"]) == (2, 3, 1)


async def test_a_service_created_while_resuming_gets_a_working_token(client):
    t = await new_tenant(client)
    await suspend(client, t)
    await suspend(client, t, False)
    await new_service(client, t)
    await new_key(client, t)
    assert (await deliver(client, t.client_token)).status_code == 200


# --- admin token ------------------------------------------------------------------------------
async def test_the_operator_reissues_an_admin_token(client):
    t = await new_tenant(client)
    r = await client.post(f"/v1/admin/tenants/{t.id}/admin-token", headers=OPERATOR)
    assert r.status_code == 200 and set(r.json()) == {"admin_token"}
    fresh = r.json()["admin_token"]
    assert fresh.startswith(f"kta_{t.id}_") and fresh != t.admin_token
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 401
    new_auth = {"Authorization": f"Bearer {fresh}"}
    assert (await client.get("/v1/tenant", headers=new_auth)).status_code == 200
    assert fresh not in (await client.get(f"/v1/admin/tenants/{t.id}", headers=OPERATOR)).text
    # for a suspended tenant too: a leaked token can always be revoked
    await suspend(client, t)
    r = await client.post(f"/v1/admin/tenants/{t.id}/admin-token", headers=OPERATOR)
    assert r.status_code == 200
    assert (await client.get("/v1/tenant", headers=new_auth)).status_code == 401


async def test_a_tenant_rotates_its_own_admin_token(client):
    t = await new_tenant(client)
    r = await client.post("/v1/tenant/admin-token", headers=t.auth)
    assert r.status_code == 200 and set(r.json()) == {"admin_token"}
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 401
    fresh = {"Authorization": f"Bearer {r.json()['admin_token']}"}
    assert (await client.get("/v1/tenant", headers=fresh)).status_code == 200
    assert (await deliver(client, t.client_token)).status_code != 403  # client token untouched


# --- delete -----------------------------------------------------------------------------------
async def all_keys_of(redis, tenant: str) -> list[bytes]:
    return sorted([k async for k in redis.scan_iter(match=keys.every_key_of(tenant))])


@pytest.mark.parametrize("confirm", ["", "wrong", "ACME"])
async def test_delete_needs_the_id_repeated(client, redis, confirm):
    t, _ = await busy_tenant(client)
    r = await client.delete(f"/v1/admin/tenants/{t.id}", params={"confirm": confirm},
                            headers=OPERATOR)  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "confirm", r.text
    r = await client.delete(f"/v1/admin/tenants/{t.id}", headers=OPERATOR)
    missing = {"error": "confirm: missing required query parameter", "field": "confirm"}
    assert (r.status_code, r.json()) == (400, missing)
    assert (await deliver(client, t.client_token)).status_code == 200


async def test_delete_removes_everything_and_stops_every_token(client, redis, settings):
    t, app = await busy_tenant(client)
    other, _ = await busy_tenant(client, name="other")
    webhook = {"webhook_url": "http://127.0.0.1:9/h", "webhook_events": ["key.delivered"]}
    assert (await client.patch("/v1/tenant", json=webhook, headers=t.auth)).status_code == 200
    await new_service(client, t, slug="timed", policy="time", key_ttl_minutes=5)
    await redis.set(keys.DEMO_TENANT, t.id)
    await deliver(client, t.client_token)  # one more key.delivered event, today's usage
    before_other = await all_keys_of(redis, other.id)
    assert {keys.usage(t.id, utc_day(T0_MS)).encode(), keys.events(t.id).encode()} <= set(
        await all_keys_of(redis, t.id)
    )

    r = await client.delete(f"/v1/admin/tenants/{t.id}", params={"confirm": t.id},
                            headers=OPERATOR)  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == t.id and body["state"] == "deleted" and body["keys_removed"] >= 8

    assert await all_keys_of(redis, t.id) == []
    assert not await redis.sismember(keys.TENANTS, t.id)
    assert not await redis.sismember(keys.WEBHOOK_TENANTS, t.id)
    assert not await redis.sismember(keys.TIME_SERVICES, f"{t.id}:timed")
    assert await redis.get(keys.DEMO_TENANT) is None
    assert await all_keys_of(redis, other.id) == before_other  # nobody else's

    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 401
    assert (await client.post("/v1/services", json={"slug": "x", "policy": "usage"},
                              headers=t.auth)).status_code == 401  # fmt: skip
    for r in (await deliver(client, t.client_token), await app_deliver(client, app["app_token"])):
        assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
    assert (await client.get(f"/v1/admin/tenants/{t.id}", headers=OPERATOR)).status_code == 404
    listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
    assert [x["id"] for x in listed] == [other.id]
    assert (await deliver(client, other.client_token)).status_code == 200
    # nothing new appeared for the deleted tenant after all that
    assert await all_keys_of(redis, t.id) == []
