"""The console over HTTP (no browser): sign-in and sessions, CSRF, headers, isolation,
form errors, the store being down. Session storage runs on a single node and a cluster."""

from __future__ import annotations

import dataclasses
import ipaddress

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from rotator.api.app import create_app
from rotator.domain.clock import FakeClock
from rotator.domain.errors import StoreUnavailable
from rotator.store import keys, sessions, tenants
from rotator.store.connection import Durability
from tests.asgi import app_client
from tests.conftest import OPERATOR_TOKEN
from tests.integration.console_support import (
    csrf_of,
    field_errors,
    post_form,
    set_cookie_headers,
    sign_in,
)
from tests.integration.management import SECRET, deliver, new_key, new_service, new_tenant

PAGES = (
    "/app/services", "/app/new-service", "/app/apps", "/app/settings", "/app/start",
    "/app/activity",
)  # fmt: skip


def signed_out(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"] == "/app/signin"


# --- sign in, cookies, sessions ------------------------------------------------------------
@pytest.mark.backends("single", "cluster")
async def test_sign_in_sets_a_session_cookie_that_holds_no_token(client, redis):
    t = await new_tenant(client)
    r = await sign_in(client, t.admin_token)
    assert r.status_code == 303 and r.headers["location"] == "/app/services"
    (cookie,) = set_cookie_headers(r, "kr_session")
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes
    assert "path=/app" in attributes and "secure" not in attributes  # plain http here
    value = cookie.split(";")[0].split("=", 1)[1]
    tenant, secret = value.split(".", 1)
    assert tenant == t.id and len(secret) >= 43  # 256 bits, URL-safe base64
    assert t.admin_token.split("_", 2)[2] not in value and t.client_token not in value
    # the session is stored under the tenant's hash tag, keyed by the secret's hash only
    members = await redis.smembers(keys.sessions(t.id))
    assert len(members) == 1 and secret.encode() not in members
    page = await client.get("/app/services")
    assert page.status_code == 200 and "Services" in page.text


async def test_a_wrong_token_is_refused_next_to_the_field_and_not_echoed(client):
    t = await new_tenant(client)
    wrong = t.admin_token[:-4] + "AAAA"
    page = await client.get("/app/signin")
    r = await client.post("/app/signin", data={"token": wrong, "_csrf_token": csrf_of(page)})
    assert r.status_code == 401
    assert "not right" in field_errors(r)["token"]
    assert wrong not in r.text and not set_cookie_headers(r, "kr_session")
    # a client token is not an admin token either
    r = await sign_in(client, t.client_token)
    assert r.status_code == 401
    assert signed_out(await client.get("/app/services"))


async def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(settings, redis, clock):
    trusted = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with app_client(create_app(trusted, clock=clock)) as c:
        t = await new_tenant(c)
        page = await c.get("/app/signin")
        r = await c.post(
            "/app/signin",
            data={"token": t.admin_token, "_csrf_token": csrf_of(page)},
            headers={"x-forwarded-proto": "https"},
        )
        assert "secure" in set_cookie_headers(r, "kr_session")[0].lower()
    async with app_client(create_app(settings, clock=clock)) as c:  # peer not trusted
        page = await c.get("/app/signin")
        r = await c.post(
            "/app/signin",
            data={"token": t.admin_token, "_csrf_token": csrf_of(page)},
            headers={"x-forwarded-proto": "https"},
        )
        assert r.status_code == 303
        assert "secure" not in set_cookie_headers(r, "kr_session")[0].lower()


@pytest.mark.backends("single", "cluster")
async def test_sign_out_ends_the_session_even_for_a_replayed_cookie(client, redis):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    cookie = client.cookies.get("kr_session", path="/app")
    r = await post_form(client, "/app/signout", {})
    assert r.status_code == 303 and r.headers["location"].startswith("/app/signin")
    assert await redis.scard(keys.sessions(t.id)) == 0
    client.cookies.set("kr_session", cookie, path="/app")  # the old cookie, replayed
    assert signed_out(await client.get("/app/services"))


async def test_idle_sessions_end_and_use_keeps_them_alive(client, clock: FakeClock):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)  # idle limit 30 min, absolute 12 h (defaults)
    for _ in range(3):  # 3 x 20 min = 60 min signed in, never 30 min idle
        clock.advance(minutes=20)
        assert (await client.get("/app/services")).status_code == 200
    clock.advance(minutes=30)
    assert signed_out(await client.get("/app/services"))


async def test_a_session_ends_at_its_absolute_limit_however_busy(client, clock: FakeClock):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    for _ in range(12 * 3 - 1):  # every 20 minutes for just under 12 hours
        clock.advance(minutes=20)
        assert (await client.get("/app/services")).status_code == 200
    clock.advance(minutes=20)
    assert signed_out(await client.get("/app/services"))


@pytest.mark.backends("single", "cluster")
async def test_reissuing_the_admin_token_ends_every_console_session(client, redis):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    other = client.another()
    async with other:
        await sign_in(other, t.admin_token)
        assert (await other.get("/app/services")).status_code == 200
        new_token = (await tenants.issue_admin_token(redis, Durability(), t.id)).admin_token
        assert signed_out(await client.get("/app/services"))
        assert signed_out(await other.get("/app/services"))
    assert await redis.exists(keys.sessions(t.id)) == 0
    assert (await sign_in(client, t.admin_token)).status_code == 401  # old token refused
    assert (await sign_in(client, new_token)).status_code == 303
    r = await client.get("/v1/tenant", headers={"Authorization": f"Bearer {new_token}"})
    assert r.status_code == 200


@pytest.mark.backends("single", "cluster")
async def test_opening_a_session_forgets_the_expired_ones(redis):
    tenant = (await tenants.create_tenant(redis, Durability(), name="s", demo=False, now_ms=1)).id
    admin = await tenants.admin_token_hash(redis, tenant)
    assert admin is not None
    first = await sessions.open_tenant_session(
        redis, tenant, admin_hash=admin, now_ms=1000, idle_ms=60_000, max_ms=3_600_000
    )
    await redis.delete(keys.session(tenant, sessions.hash_secret(first)))  # expired
    second = await sessions.open_tenant_session(
        redis, tenant, admin_hash=admin, now_ms=2000, idle_ms=60_000, max_ms=3_600_000
    )
    assert await redis.smembers(keys.sessions(tenant)) == {sessions.hash_secret(second).encode()}
    assert 0 < await redis.pttl(keys.session(tenant, sessions.hash_secret(second))) <= 60_000
    assert await sessions.check_tenant_session(
        redis, tenant, second, now_ms=2000, idle_ms=60_000, max_ms=3_600_000
    )
    assert not await sessions.check_tenant_session(
        redis, tenant, first, now_ms=2000, idle_ms=60_000, max_ms=3_600_000
    )
    assert await sessions.revoke_tenant_sessions(redis, tenant) == 1
    # a session is opened only with the admin token the tenant has now: one checked just
    # before a reissue is refused by the script that would open it
    await tenants.issue_admin_token(redis, Durability(), tenant)
    assert (
        await sessions.open_tenant_session(
            redis, tenant, admin_hash=admin, now_ms=3000, idle_ms=60_000, max_ms=3_600_000
        )
        is None
    )


@pytest.mark.backends("single", "cluster")
async def test_failed_sign_ins_are_throttled_per_client_ip(settings, redis, clock):
    proxied = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with app_client(create_app(proxied, clock=clock)) as c:
        t = await new_tenant(c)
        page = await c.get("/app/signin")
        token = csrf_of(page)

        async def attempt(value: str, ip: str) -> httpx.Response:
            return await c.post(
                "/app/signin",
                data={"token": value, "_csrf_token": token},
                headers={"x-forwarded-for": ip},
            )

        for n in range(1, sessions.SIGNIN_MAX_FAILURES):
            assert (await attempt(f"kta_{t.id}_wrong{n}", "203.0.113.9")).status_code == 401
        last = await attempt("kta_wrong", "203.0.113.9")
        assert last.status_code == 429  # the tenth failure used up the window
        # throttled: even the right token is not checked, and the page says when to retry
        r = await attempt(t.admin_token, "203.0.113.9")
        assert r.status_code == 429 and not set_cookie_headers(r, "kr_session")
        assert 0 < int(r.headers["retry-after"]) <= 15 * 60
        assert "Try again in 15 minutes" in field_errors(r)["token"]
        # another address is not affected
        assert (await attempt(t.admin_token, "198.51.100.4")).status_code == 303
        # the operator sign-in shares the per-address budget
        r = await c.post(
            "/app/operator/signin",
            data={"token": OPERATOR_TOKEN, "_csrf_token": token},
            headers={"x-forwarded-for": "203.0.113.9"},
        )
        assert r.status_code == 429


# --- CSRF, headers -------------------------------------------------------------------------
async def test_a_form_posted_without_its_csrf_token_is_refused(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await client.post("/app/new-service", data={"slug": "openai", "policy": "usage"})
    assert r.status_code == 403 and "expired" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    r = await client.post(
        "/app/new-service", data={"slug": "openai", "policy": "usage", "_csrf_token": "x" * 128}
    )
    assert r.status_code == 403
    r = await client.get("/v1/services", headers=t.auth)
    assert r.json() == []  # nothing was created
    # the same form with the page's token works
    r = await post_form(client, "/app/new-service", {"slug": "openai", "policy": "usage"})
    assert r.status_code == 303


async def test_a_csrf_token_from_another_master_key_is_refused_and_reset(settings, clock):
    import base64
    import os

    from rotator.crypto import KeyRing

    other = dataclasses.replace(
        settings, master_key=KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    )
    async with app_client(create_app(other, clock=clock)) as c:
        page = await c.get("/app/signin")
        stale_cookie, stale_token = c.cookies.get("kr_csrf"), csrf_of(page)
    async with app_client(create_app(settings, clock=clock)) as c:
        c.cookies.set("kr_csrf", stale_cookie, path="/app")
        r = await c.post("/app/signin", data={"token": "x", "_csrf_token": stale_token})
        assert r.status_code == 403
        assert any("max-age=0" in v.lower() for v in set_cookie_headers(r, "kr_csrf"))


async def test_console_pages_send_strict_headers_and_the_api_does_not_get_them(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    for path in (*PAGES, "/app/signin", "/app/operator/signin", "/app/services/nope"):
        r = await client.get(path)
        assert r.headers["content-security-policy"] == (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ), path
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "same-origin", path
        assert "style=" not in r.text and "<script>" not in r.text, path  # CSP would block
        assert "hx-on" not in r.text, path
    r = await deliver(client, t.client_token)
    assert "content-security-policy" not in r.headers and "set-cookie" not in r.headers
    r = await client.post("/v1/services", json={"slug": "a", "policy": "usage"}, headers=t.auth)
    assert r.status_code == 201  # the Bearer API needs no CSRF token
    static = await client.get("/static/vendor/htmx/htmx.min.js")
    assert static.status_code == 200 and "htmx" in static.text


# --- pages ---------------------------------------------------------------------------------
async def test_unsigned_visitors_are_sent_to_sign_in(client):
    await new_tenant(client)
    for path in PAGES:
        assert signed_out(await client.get(path)), path
    r = await client.get("/app/services", headers={"hx-request": "true"})
    assert r.headers["hx-redirect"] == "/app/signin"
    r = await client.get("/app")
    assert r.status_code == 303 and r.headers["location"] == "/app/services"
    r = await client.get("/app/no/such/page")  # the console's 404 page, not the API's JSON
    assert r.status_code == 404 and "Not found" in r.text
    assert r.headers["content-type"].startswith("text/html")


async def test_console_addresses_never_answer_in_the_apis_json(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    r = await client.get("/app/operator/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Back to the operator console" in r.text
    # an id that is not a number matches no route at all: still the console's page
    for path in ("/app/apps/abc", "/app/operator/tenants/x/y"):
        r = await client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "Not found" in r.text and r.headers["x-request-id"], path
    # the address bar after a form was answered on its own address (a refused form, a token
    # shown once): Enter or a restored tab GETs it, and lands on the form's page
    for address, page in (
        ("/app/settings/client-token", "/app/settings"),
        ("/app/operator/tenants", "/app/operator"),
        ("/app/services/openai/rotate", "/app/services/openai"),
    ):
        r = await client.get(address)
        assert (r.status_code, r.headers.get("location")) == (303, page), address
    # the API's own addresses keep the API's answers
    r = await client.get("/v1/webhooks/test", headers=t.auth)
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}


@pytest.mark.backends("single", "cluster")
async def test_another_tenants_service_is_a_404_page(client):
    mine, theirs = await new_tenant(client, "mine"), await new_tenant(client, "theirs")
    await new_service(client, theirs, "secret-svc")
    await new_key(client, theirs, "secret-svc")
    await sign_in(client, mine.admin_token)
    for path in (
        "/app/services/secret-svc",
        "/app/services/secret-svc/edit",
        "/app/services/secret-svc/delete",
    ):
        r = await client.get(path)
        assert r.status_code == 404 and "Not found" in r.text, path
        assert "secret-svc" not in r.text.replace(path, "")
    r = await post_form(client, "/app/services/secret-svc/delete", {})
    assert r.status_code == 404
    r = await post_form(client, "/app/services/secret-svc/keys/1", {"active": "0"})
    assert r.status_code == 404
    assert (await deliver(client, theirs.client_token, "secret-svc")).status_code == 200


async def test_no_page_ever_contains_the_admin_token(client):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    await sign_in(client, t.admin_token)
    secret_part = t.admin_token.split("_", 2)[2]
    bodies = [(await client.get(p)).text for p in (*PAGES, "/app/services/openai")]
    bodies.append((await post_form(client, "/app/settings/client-token", {})).text)
    bodies.append((await post_form(client, "/app/apps", {"name": "web"})).text)
    for body in bodies:
        assert secret_part not in body and SECRET not in body


async def test_form_errors_are_shown_next_to_the_field_keeping_what_was_typed(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/new-service", {"slug": "Open AI", "policy": "usage"})
    assert r.status_code == 400 and "lowercase letters" in field_errors(r)["slug"]
    assert 'value="Open AI"' in r.text
    r = await post_form(client, "/app/new-service", {"slug": "t", "policy": "time"})
    assert "needs a key lifetime" in field_errors(r)["key_ttl_minutes"]
    r = await post_form(
        client, "/app/new-service", {"slug": "t", "policy": "usage", "max_daily_requests": "ten"}
    )
    assert "whole number" in field_errors(r)["max_daily_requests"]
    assert 'value="ten"' in r.text
    # digits str.isdigit() takes and int() refuses or reads otherwise; a negative; a huge one
    for typed, words in (
        ("\u00b2", "Enter a whole number, or leave it empty."),
        ("\u0663\u0660", "Enter a whole number, or leave it empty."),
        ("9" * 5000, "Enter a whole number, or leave it empty."),
        ("-5", "Enter a positive whole number"),
        ("9" * 25, "Enter a positive whole number"),
    ):
        fields = {"slug": "t", "policy": "usage", "max_daily_requests": typed}
        r = await post_form(client, "/app/new-service", fields)
        assert r.status_code == 400 and words in field_errors(r)["max_daily_requests"], typed
    await post_form(client, "/app/new-service", {"slug": "openai", "policy": "usage"})
    r = await post_form(client, "/app/new-service", {"slug": "openai", "policy": "manual"})
    assert r.status_code == 400 and "already have" in field_errors(r)["slug"]
    # a refused key: the label is kept, the secret is never echoed back
    r = await post_form(
        client,
        "/app/services/openai/keys",
        {"label": "", "secret": SECRET, "max_daily_requests": "5"},
    )
    assert r.status_code == 400 and "label" in field_errors(r)
    assert SECRET not in r.text and 'value="5"' in r.text
    r = await post_form(client, "/app/services/openai/keys", {"label": "Primary", "secret": " "})
    assert "Paste the provider key" in field_errors(r)["secret"]
    r = await post_form(
        client, "/app/settings/allowlist", {"ip_allowlist": "10.0.0.0/8\nnot-an-ip"}
    )
    assert r.status_code == 400 and "not-an-ip" in field_errors(r)["ip_allowlist"]
    r = await post_form(client, "/app/settings/webhook", {"webhook_url": "ftp://example.com/x"})
    assert "https://" in field_errors(r)["webhook_url"]
    r = await post_form(client, "/app/apps", {"name": "web", "ip_allowlist": "300.1.1.1"})
    assert "ip_allowlist" in field_errors(r)


async def test_service_and_key_lifecycle_through_the_pages(client, clock):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await post_form(
        client,
        "/app/new-service",
        {"slug": "openai", "policy": "manual", "max_daily_requests": "100"},
    )
    assert r.headers["location"] == "/app/services/openai?done=created"
    for label, secret in (("Primary", SECRET), ("Backup", SECRET[:-4] + "ABCD")):
        r = await post_form(client, "/app/services/openai/keys", {"label": label, "secret": secret})
        assert r.status_code == 303
    page = await client.get("/app/services/openai")
    assert "sk-proj-" in page.text and "WXYZ" in page.text and SECRET not in page.text
    assert (await deliver(client, t.client_token)).json()["key_label"] == "Primary"
    # rotate (htmx: the keys fragment comes back, not a whole page)
    r = await post_form(
        client,
        "/app/services/openai/rotate",
        {},
        headers={"hx-request": "true", "hx-target": "keys"},
    )
    assert r.status_code == 200 and "<html" not in r.text and 'id="keys"' in r.text
    assert (await deliver(client, t.client_token)).json()["key_label"] == "Backup"
    # disable both keys one by one: 503 once none is active
    keys_ = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    for k in keys_:
        await post_form(client, f"/app/services/openai/keys/{k['id']}", {"active": "0"})
    assert (await deliver(client, t.client_token)).status_code == 503
    r = await post_form(client, "/app/services/openai/rotate", {})
    assert r.status_code == 409 and "no active key" in r.text
    await post_form(client, f"/app/services/openai/keys/{keys_[0]['id']}", {"active": "1"})
    # relabel and limit a key
    r = await post_form(
        client,
        f"/app/services/openai/keys/{keys_[0]['id']}",
        {"label": "Main", "max_daily_requests": "7"},
    )
    assert r.status_code == 303
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()[0]
    assert (listed["label"], listed["max_daily_requests"]) == ("Main", 7)
    # edit the service: the new limit is what the API reports
    r = await post_form(
        client, "/app/services/openai/edit", {"policy": "usage", "max_daily_requests": "5"}
    )
    assert r.status_code == 303
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert (service["policy"], service["max_daily_requests"]) == ("usage", 5)
    # delete: the confirmation names what is lost
    confirm = await client.get("/app/services/openai/delete")
    assert "2 keys" in confirm.text and "usage history" in confirm.text
    await post_form(client, f"/app/services/openai/keys/{keys_[1]['id']}/delete", {})
    assert "1 key" in (await client.get("/app/services/openai/delete")).text
    r = await post_form(client, "/app/services/openai/delete", {})
    assert r.headers["location"] == "/app/services?done=deleted"
    assert (await deliver(client, t.client_token)).status_code == 404


async def test_usage_shows_today_and_the_last_days(client, clock: FakeClock):
    t = await new_tenant(client)
    await new_service(client, t, max_daily_requests=50)
    await new_key(client, t)
    for _ in range(3):
        assert (await deliver(client, t.client_token)).status_code == 200
    clock.advance(minutes=24 * 60)
    assert (await deliver(client, t.client_token)).status_code == 200
    await sign_in(client, t.admin_token)
    listing = await client.get("/app/services")
    assert 'value="1"' in listing.text and "1 / 50" in listing.text  # today, against the limit
    week = await client.get("/app/services/openai")
    assert week.text.count('<rect class="bar"') == 7
    assert "4 deliveries over 7 days" in week.text
    month = await client.get("/app/services/openai?days=30")
    assert month.text.count('<rect class="bar"') == 30
    assert '<td class="num">3</td>' in month.text and '<td class="num">1</td>' in month.text


async def test_app_form_errors_keep_what_was_typed(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    typed = {"name": "keep-me", "ip_allowlist": "10.0.0.0/8", "max_daily_requests": "abc"}
    r = await post_form(client, "/app/apps", typed)
    assert r.status_code == 400 and "whole number" in field_errors(r)["max_daily_requests"]
    assert 'value="keep-me"' in r.text and "10.0.0.0/8" in r.text
    assert (await client.get("/v1/apps", headers=t.auth)).json() == []
    await post_form(client, "/app/apps", {"name": "web"})
    app_id = (await client.get("/v1/apps", headers=t.auth)).json()[0]["id"]
    r = await post_form(client, f"/app/apps/{app_id}", typed)
    assert r.status_code == 400 and "whole number" in field_errors(r)["max_daily_requests"]
    assert 'value="keep-me"' in r.text and "10.0.0.0/8" in r.text
    assert (await client.get("/v1/apps", headers=t.auth)).json()[0]["name"] == "web"


async def test_apps_and_client_token_are_shown_once(client):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    await sign_in(client, t.admin_token)
    r = await post_form(
        client, "/app/apps", {"name": "web", "ip_allowlist": "127.0.0.1", "max_daily_requests": "9"}
    )
    token = r.text.split('id="app-token" class="mono" type="text" readonly value="')[1].split('"')[
        0
    ]
    assert token.startswith("kra_") and "only time it is shown" in r.text
    got = await client.get("/v1/next", params={"service": "openai", "app_token": token})
    assert got.status_code == 200
    assert token not in (await client.get("/app/apps")).text
    app_id = (await client.get("/v1/apps", headers=t.auth)).json()[0]["id"]
    await post_form(client, f"/app/apps/{app_id}/delete", {})
    got = await client.get("/v1/next", params={"service": "openai", "app_token": token})
    assert got.status_code == 403

    settings_page = await client.get("/app/settings")
    assert "stops working the moment you click" in settings_page.text
    r = await post_form(client, "/app/settings/client-token", {})
    new = r.text.split('id="client-token-value" class="mono" type="text" readonly value="')[1]
    new = new.split('"')[0]
    assert (await deliver(client, t.client_token)).status_code == 403
    assert (await deliver(client, new)).status_code == 200
    assert new not in (await client.get("/app/settings")).text


async def test_get_started_fills_in_this_server_and_the_slugs_never_a_token(client):
    t = await new_tenant(client)
    await new_service(client, t, "anthropic")
    await sign_in(client, t.admin_token)
    r = await client.get("/app/start")
    assert (
        "http://testserver/v1/next?service=anthropic&amp;token=YOUR_TENANT_CLIENT_TOKEN" in r.text
    )
    assert "krc_" not in r.text and "kta_" not in r.text


# --- the store is down ---------------------------------------------------------------------
@pytest.mark.parametrize("error", [StoreUnavailable(), RedisConnectionError("refused")])
async def test_the_store_being_down_gives_a_friendly_503_page(client, monkeypatch, error):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)

    async def down(*args, **kwargs):
        raise error

    monkeypatch.setattr("rotator.store.services.list_services", down)
    r = await client.get("/app/services")
    assert r.status_code == 503 and "Temporarily unavailable" in r.text
    assert "Traceback" not in r.text and r.headers["retry-after"] == "5"
    assert r.headers["content-type"].startswith("text/html")


# --- operator ------------------------------------------------------------------------------
async def test_operator_signs_in_lists_and_creates_tenants(client):
    await new_tenant(client, "existing")
    assert (await client.get("/app/operator")).headers["location"] == "/app/operator/signin"
    r = await sign_in(client, "not-the-token", "/app/operator/signin")
    assert r.status_code == 401 and "not right" in field_errors(r)["token"]
    r = await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    assert r.status_code == 303
    (cookie,) = set_cookie_headers(r, "kr_operator")
    assert "path=/app/operator" in cookie.lower() and OPERATOR_TOKEN not in cookie
    page = await client.get("/app/operator")
    assert page.status_code == 200 and "existing" in page.text and OPERATOR_TOKEN not in page.text
    r = await post_form(client, "/app/operator/tenants", {"name": ""})
    assert r.status_code == 400 and "name" in field_errors(r)
    r = await post_form(client, "/app/operator/tenants", {"name": "newco", "demo": "1"})
    admin = r.text.split('id="admin-token" class="mono" type="text" readonly value="')[1]
    admin = admin.split('"')[0]
    assert admin.startswith("kta_") and 'id="client-token"' in r.text
    assert OPERATOR_TOKEN not in r.text
    assert (await client.get("/v1/tenant", headers={"Authorization": f"Bearer {admin}"})).json()[
        "demo"
    ]
    # a tenant session does not open the operator pages, nor the reverse
    await post_form(client, "/app/operator/signout", {})
    assert (await client.get("/app/operator")).status_code == 303


async def test_changing_the_operator_token_ends_its_console_sessions(client, settings, clock):
    await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    assert (await client.get("/app/operator")).status_code == 200
    changed = dataclasses.replace(settings, admin_token="a-new-operator-token-0123456789")
    async with app_client(create_app(changed, clock=clock)) as after:
        after.cookies = client.cookies  # the same browser, after the restart with the new token
        r = await after.get("/app/operator")
        assert (r.status_code, r.headers["location"]) == (303, "/app/operator/signin")
    # ended, not only refused: going back to the old token does not revive it
    assert (await client.get("/app/operator")).status_code == 303


async def test_operator_console_is_off_without_an_admin_token(settings, redis, clock):
    off = dataclasses.replace(settings, admin_token=None)
    async with app_client(create_app(off, clock=clock)) as c:
        page = await c.get("/app/operator/signin")
        assert "operator console is off" in page.text
        r = await c.post(
            "/app/operator/signin",
            data={"token": "", "_csrf_token": csrf_of(await c.get("/app/signin"))},
        )
        assert r.status_code == 404 and not set_cookie_headers(r, "kr_operator")
