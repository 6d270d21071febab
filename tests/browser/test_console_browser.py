"""The console in a real browser (Debian's chromium, driven by Playwright).

The main scenario is issue #11's: sign in → create a service → add two keys → the masked
key shown and the secret nowhere in the page → a key fetched through /v1/next → the usage
shown goes up → disable a key → add many keys at once and move one to the front (#12) →
reissue the client token and see the old one refused →
create an app and copy its token → a webhook to a local receiver and its test event
arriving signed → sign out, and the old cookie no longer works. Every request the browser
makes is recorded: none may go to another host.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect

from rotator.cli.webhook_listen import Receiver
from tests.browser.conftest import LiveServer
from tests.conftest import OPERATOR_TOKEN
from tests.integration.webhook_support import deliver_all, verify_signature

pytestmark = pytest.mark.timeout(120)

SECRET_1 = "sk-proj-browser0123456789abcdefghijklmnWXYZ"
SECRET_2 = "sk-proj-browser9876543210zyxwvutsrqponmABCD"
SECRET_3 = "sk-proj-browserbulk000aaaaaaaaaaaaaaaaaaaEFGH"
SECRET_4 = "sk-proj-browserbulk111bbbbbbbbbbbbbbbbbbbIJKL"


class Recorded:
    """Every URL the browser requested, for the 'no other host' check."""

    def __init__(self, context: BrowserContext) -> None:
        self.urls: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))

    def foreign(self, origin: str) -> list[str]:
        # data: URLs (the empty favicon) are not fetched from any host
        return [
            u for u in self.urls if not u.startswith(origin + "/") and not u.startswith("data:")
        ]


async def new_context(browser: Browser, server: LiveServer, **options) -> BrowserContext:
    context = await browser.new_context(base_url=server.url, **options)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    return context


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/app/signin")
    await page.get_by_label("Admin token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/app/services$"))


async def signed_in(
    browser: Browser, server: LiveServer, tenant: dict
) -> tuple[BrowserContext, Page, dict[str, str]]:
    """A page signed in as `tenant`, and the API headers of its admin token."""
    context = await new_context(browser, server)
    page = await context.new_page()
    await sign_in(page, tenant["admin_token"])
    return context, page, {"Authorization": f"Bearer {tenant['admin_token']}"}


async def menu(page: Page, name: str) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


async def next_key(server: LiveServer, token: str, **params) -> httpx.Response:
    async with server.api() as c:
        return await c.get("/v1/next", params={"service": "openai", "token": token, **params})


async def test_main_scenario(browser: Browser, live_server: LiveServer, store, receiver: Receiver):
    tenant = await live_server.new_tenant("browser-co")
    context = await new_context(browser, live_server)
    recorded = Recorded(context)
    page = await context.new_page()
    try:
        # sign in
        await sign_in(page, tenant["admin_token"])
        assert tenant["admin_token"] not in await page.content()

        # create a service
        await page.get_by_role("link", name="Create a service").click()
        await page.get_by_label("Slug").fill("openai")
        await page.get_by_role("radio", name="Usage").check()
        await page.get_by_label("Daily limit").fill("1000")
        await page.get_by_role("button", name="Create service").click()
        await expect(page).to_have_url(re.compile(r"/app/services/openai"))
        await expect(page.get_by_role("heading", level=1)).to_contain_text("openai")

        # add two keys: the secret goes into a password field
        for label, secret in (("Primary", SECRET_1), ("Backup", SECRET_2)):
            await page.get_by_label("Label", exact=True).fill(label)
            secret_field = page.get_by_label("Provider key")
            assert await secret_field.get_attribute("type") == "password"
            await secret_field.fill(secret)
            await page.get_by_role("button", name="Add key").click()
            await expect(page.get_by_role("status").first).to_contain_text("Key added")
        masked = page.get_by_label("Masked key")
        await expect(masked).to_have_count(2)
        assert (await masked.first.inner_text()).startswith("sk-proj-")
        assert (await masked.first.inner_text()).endswith("WXYZ")
        content = await page.content()
        for secret in (SECRET_1, SECRET_2):
            assert secret not in content and secret[8:-4] not in content

        # a key fetched through the API: the usage shown goes up
        r = await next_key(live_server, tenant["client_token"])
        assert r.status_code == 200 and r.json()["key"] in (SECRET_1, SECRET_2)
        await page.reload()
        await expect(page.locator("dl.facts")).to_contain_text("1 / 1,000")
        await menu(page, "Services")
        await expect(page.get_by_role("row", name=re.compile("openai"))).to_contain_text(
            "1 / 1,000"
        )

        # disable a key (htmx swaps the keys list in place)
        await page.get_by_role("link", name="openai").click()
        await page.get_by_role("button", name="Disable Primary").click()
        await expect(page.locator("#keys")).to_contain_text("disabled")
        await expect(page.get_by_role("button", name="Enable Primary")).to_be_visible()
        for _ in range(3):
            r = await next_key(live_server, tenant["client_token"])
            assert r.json()["key_label"] == "Backup"

        # add many keys at once (one a line; no label: "Key <id>"), then move the last one to
        # the front of the rotation (htmx swaps the list in place)
        await page.get_by_label("Keys, one a line").fill(
            f"# two spare keys\n{SECRET_3}\tSpare\n\n{SECRET_4}\n"
        )
        await page.get_by_role("button", name="Add the keys").click()
        await expect(page.get_by_role("status").first).to_contain_text("Keys added")
        await expect(masked).to_have_count(4)
        content = await page.content()
        for secret in (SECRET_3, SECRET_4):
            assert secret not in content and secret[8:-4] not in content
        key_titles = page.locator("#keys .key-title strong")
        await expect(key_titles).to_have_text(
            ["Primary", "Backup", "Spare", re.compile(r"Key \d+")]
        )
        await page.get_by_role("button", name=re.compile(r"^Move to front \(Key \d+\)$")).click()
        await expect(page.get_by_role("region", name="Keys").get_by_role("status")).to_contain_text(
            "Key moved"
        )
        await expect(key_titles).to_have_text(
            [re.compile(r"Key \d+"), "Primary", "Backup", "Spare"]
        )
        await page.reload()  # the order is stored, not just shown
        await expect(key_titles.first).to_have_text(re.compile(r"Key \d+"))

        # reissue the client token: the old one is refused at once
        await menu(page, "Settings")
        await expect(page.get_by_text("stops working the moment you click")).to_be_visible()
        await page.get_by_role("button", name="Issue a new Client Access Token").click()
        new_token = await page.locator("#client-token-value").input_value()
        assert new_token.startswith("krc_") and new_token != tenant["client_token"]
        assert (await next_key(live_server, tenant["client_token"])).status_code == 403
        assert (await next_key(live_server, new_token)).status_code == 200

        # create an app and copy its token
        await menu(page, "Apps")
        await page.get_by_label("Name").fill("web")
        await page.get_by_role("button", name="Create app").click()
        shown = await page.locator("#app-token").input_value()
        await page.get_by_role("button", name="Copy").click()
        await expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert copied == shown and copied.startswith("kra_")
        async with live_server.api() as c:
            r = await c.get("/v1/next", params={"service": "openai", "app_token": copied})
        assert r.status_code == 200

        # a webhook to a local receiver, and its test event arriving signed
        await menu(page, "Settings")
        await page.get_by_label("Webhook URL").fill(receiver.url + "/hook")
        await page.get_by_role("button", name="Save webhook").click()
        secret = await page.locator("#webhook-secret").input_value()
        assert secret.startswith("whsec_")
        await page.get_by_role("button", name="Send test event").click()
        await expect(page.get_by_role("status").first).to_contain_text("Test event recorded")
        await deliver_all(live_server.settings, store)
        (got,) = await receiver.wait_for(1)
        assert json.loads(got.body)["type"] == "webhook.test"
        assert verify_signature(secret, got.headers, got.body)
        await page.get_by_role("button", name="Refresh").click()
        await expect(page.locator("#deliveries")).to_contain_text("delivered")
        await expect(page.locator("#deliveries")).to_contain_text("webhook.test")

        # sign out: the old cookie replayed gets the sign-in page
        (cookie,) = [c for c in await context.cookies() if c["name"] == "kr_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/app"
        assert tenant["admin_token"] not in cookie["value"]
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/app/signin"))
        await expect(page.get_by_text("You were signed out.")).to_be_visible()
        replay = await new_context(browser, live_server)
        await replay.add_cookies([{**cookie}])
        replayed = await replay.new_page()
        await replayed.goto("/app/services")
        await expect(replayed).to_have_url(re.compile(r"/app/signin$"))
        await expect(replayed.get_by_role("heading", name="Sign in")).to_be_visible()
        await replay.close()
    finally:
        await context.close()
    assert recorded.urls and not recorded.foreign(live_server.url)


async def operator_sign_in(page: Page) -> None:
    await page.goto("/app/operator/signin")
    await page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/app/operator$"))


async def test_lifecycle_scenario(browser: Browser, live_server: LiveServer):
    """Issue #12's lifecycles: the operator suspends a tenant (its client token gets 403 at
    /v1/next, its console turns read-only), resumes it, reissues its admin token (the old
    session ends); the tenant edits an app, suspends it and reissues its token."""
    tenant = await prepared_tenant(live_server, "life-co")
    tenant_context = await new_context(browser, live_server)
    operator_context = await new_context(browser, live_server)
    recorded = [Recorded(tenant_context), Recorded(operator_context)]
    page = await tenant_context.new_page()
    operator = await operator_context.new_page()
    try:
        await sign_in(page, tenant["admin_token"])
        await operator_sign_in(operator)
        row = operator.get_by_role("row", name=re.compile("life-co"))
        await expect(row).to_contain_text("active")
        await row.get_by_role("link", name="life-co").click()
        await expect(operator.get_by_role("heading", level=1)).to_contain_text("life-co")

        # suspend: the client token is refused at once, the tenant's console is read-only
        await operator.get_by_role("button", name="Suspend life-co").click()
        await expect(operator.get_by_role("status").first).to_contain_text("Tenant suspended")
        r = await next_key(live_server, tenant["client_token"])
        assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
        await menu(page, "Settings")
        await expect(page.get_by_text("Your tenant is suspended.")).to_be_visible()
        await expect(
            page.get_by_role("button", name="Issue a new Client Access Token")
        ).to_be_disabled()
        await expect(page.get_by_role("button", name="Sign out")).to_be_enabled()

        # resume: everything works again
        await operator.get_by_role("button", name="Resume life-co").click()
        await expect(operator.get_by_role("status").first).to_contain_text("Tenant resumed")
        assert (await next_key(live_server, tenant["client_token"])).status_code == 200
        await page.reload()
        await expect(page.get_by_text("Your tenant is suspended.")).to_have_count(0)

        # a new admin token: the tenant's session ends; the new token signs in
        await expect(operator.get_by_text("stop working the moment you click")).to_be_visible()
        await operator.get_by_role("button", name="Issue a new admin token").click()
        fresh = await operator.locator("#admin-token-value").input_value()
        assert fresh.startswith("kta_") and fresh != tenant["admin_token"]
        await page.goto("/app/services")
        await expect(page).to_have_url(re.compile(r"/app/signin$"))
        await sign_in(page, fresh)

        # an app: created, edited, suspended, resumed, its token reissued and copied
        await menu(page, "Apps")
        await page.get_by_label("Name").fill("web")
        await page.get_by_role("button", name="Create app").click()
        old_token = await page.locator("#app-token").input_value()
        await page.get_by_role("link", name="web").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("App web")
        await page.get_by_label("Name").fill("batch")
        await page.get_by_label("Daily limit").fill("5")
        await page.get_by_role("button", name="Save changes").click()
        await expect(page.get_by_role("status").first).to_contain_text("Changes saved")
        await expect(page.locator("dl.facts")).to_contain_text("5")
        await page.get_by_role("button", name="Suspend batch").click()
        await expect(page.get_by_role("status").first).to_contain_text("App suspended")
        async with live_server.api() as c:
            r = await c.get("/v1/next", params={"service": "openai", "app_token": old_token})
        assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
        await page.get_by_role("button", name="Resume batch").click()
        await expect(page.get_by_role("status").first).to_contain_text("App resumed")
        await expect(page.get_by_text("stops working the moment you click")).to_be_visible()
        await page.get_by_role("button", name="Issue a new token").click()
        await page.get_by_role("button", name="Copy").click()
        await expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert copied == await page.locator("#app-token").input_value() != old_token
        async with live_server.api() as c:
            old = await c.get("/v1/next", params={"service": "openai", "app_token": old_token})
            new = await c.get("/v1/next", params={"service": "openai", "app_token": copied})
        assert (old.status_code, new.status_code) == (403, 200)
    finally:
        await tenant_context.close()
        await operator_context.close()
    assert not any(r.foreign(live_server.url) for r in recorded)


# --- accessibility, layout, CSP -------------------------------------------------------------
async def submit(page: Page, button: str) -> None:
    """Click a form's button and wait for the page it leads to to load (styles included:
    the checks below must never see a half-loaded page)."""
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name=button).click()


async def audit(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def tenant_pages(page: Page, tenant: dict):
    """(name, action) pairs: each action leaves the page in a state worth checking."""

    async def go(path: str):
        await page.goto(path)

    async def bad_service():
        await page.goto("/app/new-service")
        await page.get_by_label("Slug").fill("Not A Slug")
        await page.get_by_role("radio", name="Time").check()
        await submit(page, "Create service")

    async def bad_key():
        await page.goto("/app/services/openai")
        await page.get_by_label("Label", exact=True).fill("")
        await submit(page, "Add key")

    async def bad_bulk():
        await page.goto("/app/services/openai")
        await page.get_by_label("Keys, one a line").fill("sk-one\nsk-two\tLabel\tmany\n")
        await submit(page, "Add the keys")

    async def bad_import():
        await page.goto("/app/import")
        await page.get_by_label("Or paste its content").fill("slug,secret\nNot A Slug,sk-x1\n")
        await submit(page, "Import")

    async def imported():
        await page.goto("/app/import")
        await page.get_by_label("Or paste its content").fill(
            "slug,policy,label,secret\nimported,usage,Primary,sk-imported-abcdefghijklmnop\n"
        )
        await submit(page, "Import")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Imported")

    async def bad_app():
        await page.goto("/app/apps")
        await page.get_by_label("Name").fill("web")
        await page.get_by_label("IP allowlist").fill("not-an-address")
        await submit(page, "Create app")

    async def app_created():
        await page.goto("/app/apps")
        await page.get_by_label("Name").fill("web")
        await submit(page, "Create app")

    async def bad_webhook():
        await page.goto("/app/settings")
        await page.get_by_label("Webhook URL").fill("ftp://example.com")
        await submit(page, "Save webhook")

    async def app_page():
        await page.goto("/app/apps")
        await page.get_by_role("link", name="web").first.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("App web")

    async def bad_app_edit():
        await app_page()
        await page.get_by_label("Daily limit").fill("many")
        await submit(page, "Save changes")

    async def app_token():
        await app_page()
        await submit(page, "Issue a new token")

    return [
        ("sign-in with error", None),
        ("services", lambda: go("/app/services")),
        ("service", lambda: go("/app/services/openai")),
        ("service 30 days", lambda: go("/app/services/openai?days=30")),
        ("edit service", lambda: go("/app/services/openai/edit")),
        ("delete service", lambda: go("/app/services/openai/delete")),
        ("create service with errors", bad_service),
        ("add key with errors", bad_key),
        ("bulk add with errors", bad_bulk),
        ("time service", lambda: go("/app/services/timed")),
        ("import", lambda: go("/app/import")),
        ("import with errors", bad_import),
        ("imported", imported),
        ("apps", lambda: go("/app/apps")),
        ("app with errors", bad_app),
        ("app created", app_created),
        ("settings", lambda: go("/app/settings")),
        ("webhook with errors", bad_webhook),
        ("app page", app_page),
        ("app edit with errors", bad_app_edit),
        ("app token reissued", app_token),
        ("get started", lambda: go("/app/start")),
        ("activity", lambda: go("/app/activity")),
        ("not found", lambda: go("/app/services/nope")),
    ]


async def operator_pages(page: Page, tenant: dict, issued: dict):
    """The operator's pages; the tenant's session is open alongside (its cookie's path is
    /app), so its read-only pages are checked while it is suspended. `issued` gets the
    admin token the operator reissues (the tenant's session ends with it)."""
    tenant_page = f"/app/operator/tenants/{tenant['id']}"

    async def go(path: str):
        await page.goto(path)

    async def bad_tenant():
        await page.goto("/app/operator")
        await submit(page, "Create tenant")

    async def created():
        await page.goto("/app/operator")
        await page.get_by_label("Name").fill("a11y-created")
        await submit(page, "Create tenant")

    async def bad_rename():
        await page.goto(tenant_page)
        await page.get_by_label("Name", exact=True).fill("")
        await submit(page, "Rename")

    async def suspended():
        await page.goto(tenant_page)
        await submit(page, f"Suspend {tenant['name']}")

    async def read_only(path: str):
        await page.goto(path)
        await expect(page.get_by_text("Your tenant is suspended.")).to_be_visible()

    async def resumed():
        await page.goto(tenant_page)
        await submit(page, f"Resume {tenant['name']}")

    async def bad_delete():
        await page.goto(tenant_page)
        await page.get_by_text(f"Delete {tenant['name']} and all its data").click()
        await page.get_by_label(re.compile("Type the tenant's id")).fill("nope")
        await submit(page, f"Delete {tenant['name']}")

    async def admin_token():
        await page.goto(tenant_page)
        await submit(page, "Issue a new admin token")
        issued["admin_token"] = await page.locator("#admin-token-value").input_value()

    return [
        ("operator tenants", lambda: go("/app/operator")),
        ("operator create with errors", bad_tenant),
        ("operator tenant created", created),
        ("operator tenant page", lambda: go(tenant_page)),
        ("operator rename with errors", bad_rename),
        ("operator tenant suspended", suspended),
        ("suspended tenant's services", lambda: read_only("/app/services/openai")),
        ("suspended tenant's settings", lambda: read_only("/app/settings")),
        ("operator tenant resumed", resumed),
        ("operator delete with errors", bad_delete),
        ("operator admin token reissued", admin_token),
        ("operator activity", lambda: go("/app/operator/activity")),
    ]


async def prepared_tenant(server: LiveServer, name: str) -> dict:
    tenant = await server.new_tenant(name)
    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
    async with server.api() as c:
        r = await c.post("/v1/services", json={"slug": "openai", "policy": "manual"}, headers=auth)
        assert r.status_code == 201
        for label, secret in (("Primary", SECRET_1), ("Backup", SECRET_2)):
            r = await c.post(
                "/v1/services/openai/keys", json={"label": label, "secret": secret}, headers=auth
            )
            assert r.status_code == 201
        await c.get("/v1/next", params={"service": "openai", "token": tenant["client_token"]})
        # a time service: key states, expiry times and when its keys run out
        time_service = {"slug": "timed", "policy": "time", "key_ttl_minutes": 30}
        assert (await c.post("/v1/services", json=time_service, headers=auth)).status_code == 201
        bulk = {"keys": [{"secret": SECRET_1}, {"secret": SECRET_2, "label": "Second"}]}
        r = await c.post("/v1/services/timed/keys/bulk", json=bulk, headers=auth)
        assert r.status_code == 201
        await c.get("/v1/next", params={"service": "timed", "token": tenant["client_token"]})
    return tenant


async def test_a_button_refused_by_the_server_shows_why(browser: Browser, live_server: LiveServer):
    """An htmx button whose key was deleted meanwhile: the error page takes the page's
    place, instead of the click seeming to do nothing."""
    tenant = await prepared_tenant(live_server, "stale")
    context, page, auth = await signed_in(browser, live_server, tenant)
    await page.goto("/app/services/openai")
    async with live_server.api() as c:
        keys = (await c.get("/v1/services/openai/keys", headers=auth)).json()
        backup = next(k for k in keys if k["label"] == "Backup")
        r = await c.delete(f"/v1/services/openai/keys/{backup['id']}", headers=auth)
        assert r.status_code == 204
    await page.get_by_role("button", name="Disable Backup").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    await expect(page.get_by_role("link", name="Back to the console")).to_be_visible()
    await context.close()


async def walk(page: Page, server: LiveServer, check) -> list[str]:
    """Run `check(name)` on every tenant and operator page; returns the problems found."""
    tenant = await prepared_tenant(server, "a11y-co")
    problems: list[str] = []
    await page.goto("/app/signin")
    await page.get_by_label("Admin token").fill("kta_wrong")
    await submit(page, "Sign in")
    problems += await check("sign-in with error")
    await sign_in(page, tenant["admin_token"])
    for name, action in (await tenant_pages(page, tenant))[1:]:
        await action()
        problems += await check(name)
    await page.goto("/app/operator/signin")
    problems += await check("operator sign-in")
    await page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
    await submit(page, "Sign in")
    await expect(page).to_have_url(re.compile(r"/app/operator$"))
    issued: dict = {}
    for name, action in await operator_pages(page, tenant, issued):
        await action()
        problems += await check(name)
    # last, as it ends the session: the tenant's own admin token reissued
    await sign_in(page, issued["admin_token"])
    await page.goto("/app/settings")
    await submit(page, "Issue a new admin token")
    await expect(page.get_by_role("heading", name="Your new admin token")).to_be_visible()
    problems += await check("tenant admin token reissued")
    return problems


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_no_serious_accessibility_finding_on_any_page(
    browser: Browser, live_server: LiveServer, scheme: str
):
    context = await new_context(browser, live_server, color_scheme=scheme)
    recorded = Recorded(context)
    page = await context.new_page()
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )

    async def check(name: str) -> list[str]:
        return [f"{name}: {finding}" for finding in await audit(page)]

    try:
        problems = await walk(page, live_server, check)
    finally:
        await context.close()
    assert not problems, "\n".join(problems)
    assert not csp_errors, csp_errors  # nothing inline that the policy blocks
    assert not recorded.foreign(live_server.url)


async def test_every_page_fits_a_phone_without_horizontal_scrolling(
    browser: Browser, live_server: LiveServer
):
    context = await new_context(
        browser, live_server, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = await context.new_page()

    async def check(name: str) -> list[str]:
        width = await page.evaluate("document.documentElement.scrollWidth")
        return [f"{name}: {width}px wide"] if width > 375 else []

    try:
        problems = await walk(page, live_server, check)
    finally:
        await context.close()
    assert not problems, problems


async def test_a_second_click_before_the_answer_posts_nothing(
    browser: Browser, live_server: LiveServer, store
):
    """A second click while the first post waits (the store's writes paused) sends nothing:
    one app is created and its token shown, and an htmx Disable clicked twice leaves the
    key disabled, not enabled again."""
    tenant = await prepared_tenant(live_server, "double")
    context, page, auth = await signed_in(browser, live_server, tenant)
    await page.goto("/app/apps")
    await page.get_by_label("Name", exact=True).fill("twice")
    await click_twice_while_writes_wait(page, store, "Create app")
    await expect(page.get_by_text("Token of the app twice")).to_be_visible()

    await page.goto("/app/services/openai")
    await click_twice_while_writes_wait(page, store, "Disable Backup")
    await expect(page.get_by_role("button", name="Enable Backup")).to_be_visible()
    async with live_server.api() as c:
        apps = (await c.get("/v1/apps", headers=auth)).json()
        keys = (await c.get("/v1/services/openai/keys", headers=auth)).json()
    assert [a["name"] for a in apps].count("twice") == 1
    assert next(k for k in keys if k["label"] == "Backup")["active"] is False
    await context.close()


async def click_twice_while_writes_wait(page: Page, store, button: str) -> None:
    """Click `button`, and again 0.3 s later, while its post waits on the store's writes
    (paused for 1.5 s, under the server's store timeout). The clicks are the page's own:
    Playwright's would wait for the navigation the first one began."""
    target = await page.get_by_role("button", name=button).element_handle()
    assert target is not None
    await store.execute_command("CLIENT", "PAUSE", 1_500, "WRITE")
    await target.evaluate("b => { b.click(); setTimeout(() => b.click(), 300); }")


async def test_reloading_a_page_that_shows_a_token_posts_nothing_again(
    browser: Browser, live_server: LiveServer
):
    """Reload after a token was shown: the page it belongs to, without the token, and no
    second app or token (the browser would otherwise post the form again)."""
    tenant = await live_server.new_tenant("reload-co")
    context, page, auth = await signed_in(browser, live_server, tenant)
    await page.goto("/app/apps")
    await page.get_by_label("Name", exact=True).fill("once")
    await submit(page, "Create app")
    token = await page.locator("#app-token").input_value()
    await page.reload()
    await expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()
    assert token not in await page.content()

    await page.goto("/app/settings")
    await submit(page, "Issue a new Client Access Token")
    client_token = await page.locator("#client-token-value").input_value()
    await page.reload()
    await expect(page).to_have_url(re.compile(r"/app/settings$"))
    assert client_token not in await page.content()
    async with live_server.api() as c:
        apps = (await c.get("/v1/apps", headers=auth)).json()
        r = await c.get("/v1/next", params={"service": "none", "token": client_token})
    assert [a["name"] for a in apps] == ["once"]
    assert r.status_code == 404  # no such service: the token shown is still the one in force
    await context.close()
