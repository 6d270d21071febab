"""The tenant and app lifecycles in the console over HTTP (issue #12 items 1 and 2): the
operator's tenant page (rename, suspend/resume, admin token, delete), a suspended tenant's
read-only pages, the tenant's own admin token, an app's page (edit, suspend, new token)."""

from __future__ import annotations

import re

import httpx
import pytest

from rotator.domain.clock import utc_day
from rotator.store import keys
from tests.conftest import OPERATOR_TOKEN, T0_MS
from tests.integration.console_support import field_errors, post_form, sign_in
from tests.integration.management import (
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

pytestmark = pytest.mark.backends("single", "cluster")


def shown_once(page: httpx.Response, element_id: str) -> str:
    """The value of a secret shown once (macros.html secret_once)."""
    found = re.search(rf'id="{element_id}" class="mono" type="text" readonly value="([^"]+)"',
                      page.text)  # fmt: skip
    assert found, f"no {element_id} on the page"
    return found.group(1)


def signed_out(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"] == "/app/signin"


async def operator_signed_in(client: httpx.AsyncClient) -> None:
    r = await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    assert r.status_code == 303


async def test_the_operator_list_and_tenant_page_show_counts(client):
    t = await new_tenant(client, "acme")
    await new_service(client, t)
    await new_key(client, t)
    await new_app(client, t)
    assert (await deliver(client, t.client_token)).status_code == 200
    await operator_signed_in(client)
    listing = await client.get("/app/operator")
    row = re.search(rf'<a href="/app/operator/tenants/{t.id}">acme</a>.*?</tr>', listing.text,
                    re.DOTALL)  # fmt: skip
    assert row, listing.text
    cells = re.findall(r'data-label="(Services|Keys|Apps|Deliveries today)">([^<]+)<', row.group(0))
    assert dict(cells) == {"Services": "1", "Keys": "1", "Apps": "1", "Deliveries today": "1"}
    assert "active" in row.group(0)
    page = await client.get(f"/app/operator/tenants/{t.id}")
    assert page.status_code == 200 and "Tenant acme" in page.text
    assert t.admin_token not in page.text and t.client_token not in page.text
    for path in ("/app/operator/tenants/0123456789abcdef", "/app/operator/tenants/NOPE"):
        missing = await client.get(path)
        assert missing.status_code == 404
        # the way back is the operator's console, not the tenants' sign-in
        assert '<a href="/app/operator">Back to the operator console</a>' in missing.text
    # a tenant's session does not open them
    async with client.another() as tenant_browser:
        await sign_in(tenant_browser, t.admin_token)
        r = await tenant_browser.get(f"/app/operator/tenants/{t.id}")
        assert r.headers["location"] == "/app/operator/signin"


async def test_rename_from_the_tenant_page(client):
    t = await new_tenant(client, "acme")
    await operator_signed_in(client)
    r = await post_form(client, f"/app/operator/tenants/{t.id}/rename", {"name": "  "})
    assert r.status_code == 400 and field_errors(r)["name"] == "Enter a name."
    r = await post_form(client, f"/app/operator/tenants/{t.id}/rename", {"name": "Acme Ltd"})
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "Tenant renamed." in page.text and "Tenant Acme Ltd" in page.text
    assert (await client.get("/v1/tenant", headers=t.auth)).json()["name"] == "Acme Ltd"


async def test_a_suspended_tenants_console_reads_but_cannot_write(client, redis):
    t = await new_tenant(client, "acme")
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t)
    await operator_signed_in(client)
    async with client.another() as tenant_browser:
        await sign_in(tenant_browser, t.admin_token)
        r = await post_form(client, f"/app/operator/tenants/{t.id}/suspend", {})
        assert r.status_code == 303
        assert "Tenant suspended" in (await client.get(r.headers["location"])).text
        assert (await deliver(client, t.client_token)).status_code == 403

        for path in ("/app/services", "/app/services/openai", "/app/apps",
                     f"/app/apps/{app['id']}", "/app/settings", "/app/start"):  # fmt: skip
            page = await tenant_browser.get(path)
            assert page.status_code == 200, path
            assert "Your tenant is suspended." in page.text and "data-read-only" in page.text
        before = await redis.hgetall(keys.tenant(t.id))
        for path, form in (
            ("/app/settings/client-token", {}),
            ("/app/settings/admin-token", {}),
            ("/app/apps", {"name": "batch"}),
            (f"/app/apps/{app['id']}/suspend", {}),
            ("/app/services/openai/delete", {}),
        ):
            r = await post_form(tenant_browser, path, form)
            assert r.status_code == 403 and "Your tenant is suspended" in r.text, path
        assert await redis.hgetall(keys.tenant(t.id)) == before
        assert len((await client.get("/v1/apps", headers=t.auth)).json()) == 1

        r = await post_form(client, f"/app/operator/tenants/{t.id}/resume", {})
        assert "Tenant resumed" in (await client.get(r.headers["location"])).text
        assert (await deliver(client, t.client_token)).status_code == 200
        page = await tenant_browser.get("/app/services")
        assert "data-read-only" not in page.text
        r = await post_form(tenant_browser, "/app/apps", {"name": "batch"})
        assert r.status_code == 200 and shown_once(r, "app-token").startswith("kra_")


async def test_the_operator_reissues_an_admin_token_and_sessions_end(client):
    t = await new_tenant(client, "acme")
    await operator_signed_in(client)
    async with client.another() as tenant_browser:
        await sign_in(tenant_browser, t.admin_token)
        assert (await tenant_browser.get("/app/services")).status_code == 200
        page = await client.get(f"/app/operator/tenants/{t.id}")
        assert "stop working the moment you click" in page.text
        r = await post_form(client, f"/app/operator/tenants/{t.id}/admin-token", {})
        fresh = shown_once(r, "admin-token-value")
        assert fresh.startswith(f"kta_{t.id}_")
        assert signed_out(await tenant_browser.get("/app/services"))
        assert (await sign_in(tenant_browser, t.admin_token)).status_code == 401
        assert (await sign_in(tenant_browser, fresh)).status_code == 303
    assert fresh not in (await client.get(f"/app/operator/tenants/{t.id}")).text


async def test_a_tenant_reissues_its_own_admin_token(client, redis):
    t = await new_tenant(client, "acme")
    await sign_in(client, t.admin_token)
    page = await client.get("/app/settings")
    assert "every console session stop working the moment you click" in page.text
    r = await post_form(client, "/app/settings/admin-token", {})
    assert r.status_code == 200
    fresh = shown_once(r, "admin-token-value")
    assert fresh.startswith(f"kta_{t.id}_") and "Sign in again" in r.text
    assert any(c.startswith("kr_session=") and "max-age=0" in c.lower()
               for c in r.headers.get_list("set-cookie"))  # fmt: skip
    assert await redis.scard(keys.sessions(t.id)) == 0
    assert signed_out(await client.get("/app/settings"))
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 401
    r = await client.get("/v1/tenant", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 200


async def test_delete_from_the_tenant_page(client, redis):
    t = await new_tenant(client, "acme")
    other = await new_tenant(client, "other")
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t)
    webhook = {"webhook_url": "http://127.0.0.1:9/h", "webhook_events": ["key.delivered"]}
    assert (await client.patch("/v1/tenant", json=webhook, headers=t.auth)).status_code == 200
    assert (await deliver(client, t.client_token)).status_code == 200
    await redis.lpush(keys.deliveries(t.id), '{"seq":1}')
    await operator_signed_in(client)
    async with client.another() as tenant_browser:
        await sign_in(tenant_browser, t.admin_token)
        present = {keys.usage(t.id, utc_day(T0_MS)), keys.events(t.id), keys.deliveries(t.id),
                   keys.sessions(t.id), keys.app(t.id, app["id"])}  # fmt: skip
        assert await redis.exists(*present) == len(present)

        r = await post_form(client, f"/app/operator/tenants/{t.id}/delete", {"confirm": "acme"})
        assert r.status_code == 400
        assert field_errors(r)["confirm"] == "Type the tenant's id exactly as shown, to confirm."
        assert await redis.exists(keys.tenant(t.id))

        r = await post_form(client, f"/app/operator/tenants/{t.id}/delete", {"confirm": t.id})
        assert r.status_code == 303 and r.headers["location"] == "/app/operator?done=deleted"
        listing = await client.get(r.headers["location"])
        assert "Tenant deleted" in listing.text and "acme" not in listing.text
        assert "other" in listing.text
        assert [k async for k in redis.scan_iter(match=keys.every_key_of(t.id))] == []
        assert signed_out(await tenant_browser.get("/app/services"))
        assert (await sign_in(tenant_browser, t.admin_token)).status_code == 401
        assert (await deliver(client, t.client_token)).status_code == 403
        assert (await client.get(f"/app/operator/tenants/{t.id}")).status_code == 404
    assert (await client.get("/v1/tenant", headers=other.auth)).status_code == 200


async def test_an_apps_page_edits_suspends_and_reissues(client):
    t = await new_tenant(client, "acme")
    await new_service(client, t)
    await new_key(client, t)
    app = await new_app(client, t, max_daily_requests=5)
    await sign_in(client, t.admin_token)

    async def app_deliver(token: str) -> httpx.Response:
        return await client.get("/v1/next", params={"service": "openai", "app_token": token})

    listing = await client.get("/app/apps")
    assert f'href="/app/apps/{app["id"]}"' in listing.text
    page = await client.get(f"/app/apps/{app['id']}")
    assert page.status_code == 200 and "App web" in page.text
    assert app["app_token"] not in page.text

    form = {"name": "batch", "ip_allowlist": "10.0.0.0/33", "max_daily_requests": ""}
    r = await post_form(client, f"/app/apps/{app['id']}", form)
    assert r.status_code == 400 and "ip_allowlist" in field_errors(r)
    assert "10.0.0.0/33" in r.text  # what was typed is kept
    form["ip_allowlist"] = "127.0.0.1\n10.0.0.0/8"
    r = await post_form(client, f"/app/apps/{app['id']}", form)
    assert r.status_code == 303
    assert "Changes saved" in (await client.get(r.headers["location"])).text
    shown = (await client.get(f"/v1/apps/{app['id']}", headers=t.auth)).json()
    assert (shown["name"], shown["ip_allowlist"], shown["max_daily_requests"]) == (
        "batch", ["127.0.0.1/32", "10.0.0.0/8"], None,
    )  # fmt: skip

    r = await post_form(client, f"/app/apps/{app['id']}/suspend", {})
    page = await client.get(r.headers["location"])
    assert "App suspended" in page.text and "Resume batch" in page.text
    assert (await app_deliver(app["app_token"])).status_code == 403
    r = await post_form(client, f"/app/apps/{app['id']}/resume", {})
    assert "App resumed" in (await client.get(r.headers["location"])).text
    assert (await app_deliver(app["app_token"])).status_code == 200

    assert "stops working the moment you click" in page.text
    r = await post_form(client, f"/app/apps/{app['id']}/token", {})
    fresh = shown_once(r, "app-token")
    assert fresh.startswith("kra_") and "only time it is shown" in r.text
    assert (await app_deliver(app["app_token"])).status_code == 403
    assert (await app_deliver(fresh)).status_code == 200
    assert fresh not in (await client.get(f"/app/apps/{app['id']}")).text

    # another tenant's app, or none, is the console's 404 page
    intruder = await new_tenant(client, "intruder")
    async with client.another() as other:
        await sign_in(other, intruder.admin_token)
        for path in (f"/app/apps/{app['id']}", "/app/apps/999"):
            assert (await other.get(path)).status_code == 404
        assert (await post_form(other, f"/app/apps/{app['id']}/suspend", {})).status_code == 404
    assert (await app_deliver(fresh)).status_code == 200
