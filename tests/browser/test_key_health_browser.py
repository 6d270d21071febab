"""The console's key health display in the browser: a key cooling down after a 429 report and
one disabled by a 401 report show their state in words, on a desktop and at phone width, with
no serious accessibility finding; enabling the disabled key brings it back."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import LiveServer
from tests.browser.test_console_browser import audit, new_context, sign_in


async def seeded(server: LiveServer) -> dict:
    tenant = await server.new_tenant("health")
    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
    async with server.api() as c:
        await c.post("/v1/services", json={"slug": "openai", "policy": "usage"}, headers=auth)
        ids = []
        for label in ("Busy", "Revoked", "Spare"):
            r = await c.post(
                "/v1/services/openai/keys",
                headers=auth,
                json={"label": label, "secret": f"sk-proj-{label}-0123456789"},
            )
            ids.append(r.json()["id"])
        client = {"Authorization": f"Bearer {tenant['client_token']}"}
        for key_id, status, extra in (
            (ids[0], 429, {"retry_after": 600, "error": "rate_limit_exceeded"}),
            (ids[1], 401, {"error": "invalid_api_key"}),
        ):
            r = await c.post(
                "/v1/report",
                headers=client,
                json={"service": "openai", "key_id": key_id, "status": status, **extra},
            )
            assert r.status_code == 202, r.text
    return tenant


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 900}, {"width": 375, "height": 740}]
)
async def test_key_state_is_shown_in_words(browser: Browser, live_server: LiveServer, viewport):
    tenant = await seeded(live_server)
    context = await new_context(browser, live_server, viewport=viewport)
    page = await context.new_page()
    try:
        await sign_in(page, tenant["admin_token"])
        await page.goto("/app/services/openai")
        busy = page.locator("li.key", has_text="Busy")
        await expect(busy.get_by_text("cooling down", exact=True)).to_be_visible()
        await expect(busy.get_by_text("Cooling down until")).to_be_visible()
        await expect(busy.get_by_text("Last report: 429 rate_limit_exceeded")).to_be_visible()
        revoked = page.locator("li.key", has_text="Revoked")
        await expect(
            revoked.get_by_text("Disabled because the provider answered 401: invalid_api_key.")
        ).to_be_visible()
        assert await audit(page) == []
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"]

        await revoked.get_by_role("button", name="Enable Revoked").click()
        await expect(
            page.locator("li.key", has_text="Revoked").get_by_text("Disabled because")
        ).to_have_count(0)
    finally:
        await context.close()
