"""Screenshots of the console's main pages, at desktop and phone width, into docs/img/.

    .venv/bin/python scripts/screenshots.py [--out docs/img]

Needs the test extras (`make install-test`: Playwright) and Debian's chromium
(`apt-get install chromium`). Starts its own throwaway Valkey and API on loopback ports,
fills a tenant with example services, keys and a week of usage (the app's clock is
injected and moved, so the chart has history), then photographs each page in light mode.
Nothing is kept but the PNGs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.async_api import Page, async_playwright

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.domain.clock import FakeClock
from rotator.embedded import EmbeddedValkey, free_port
from rotator.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
OPERATOR = "screenshots-operator-token-0123456789"
SIZES = {"desktop": {"width": 1200, "height": 820}, "phone": {"width": 375, "height": 740}}
DAY_MS = 86_400_000


def serve(settings: Settings, clock: FakeClock) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, clock=clock), host="127.0.0.1", port=port, loop="asyncio",
        log_level="warning", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


async def populate(url: str, clock: FakeClock) -> dict:
    """A tenant with three services, keys, an app, a webhook and a week of deliveries."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        op = {"Authorization": f"Bearer {OPERATOR}"}
        await c.post("/v1/admin/tenants", json={"name": "Demo Labs", "demo": True}, headers=op)
        tenant = (await c.post("/v1/admin/tenants", json={"name": "Acme"}, headers=op)).json()
        auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
        services = [
            ("openai", "usage", 5000, [("Primary", "sk-proj-"), ("Backup", "sk-proj-")]),
            ("anthropic", "manual", None, [("Team key", "sk-ant-"), ("Spare", "sk-ant-")]),
            ("stripe", "time", 2000, [("Live 1", "sk_live_"), ("Live 2", "sk_live_")]),
        ]
        for slug, policy, limit, keys in services:
            body = {"slug": slug, "policy": policy, "max_daily_requests": limit}
            if policy == "time":
                body["key_ttl_minutes"] = 1440
            await c.post("/v1/services", json=body, headers=auth)
            for label, prefix in keys:
                secret = prefix + base64.urlsafe_b64encode(os.urandom(30)).decode()
                await c.post(
                    f"/v1/services/{slug}/keys", json={"label": label, "secret": secret},
                    headers=auth,
                )  # fmt: skip
        await c.post("/v1/apps", json={"name": "web", "ip_allowlist": ["10.0.0.0/8"]}, headers=auth)
        hook = {"webhook_url": "https://hooks.example.com/keyrotator"}  # not called: no worker
        await c.patch("/v1/tenant", json=hook, headers=auth)
        token = tenant["client_token"]
        for day, n in enumerate((12, 30, 22, 41, 35, 18, 27)):
            if day:
                clock.advance(ms=DAY_MS)
            for _ in range(n):
                await c.get("/v1/next", params={"service": "openai", "token": token})
            for _ in range(n // 3):
                await c.get("/v1/next", params={"service": "anthropic", "token": token})
        return tenant


async def shoot(page: Page, out: Path, name: str, size: str) -> None:
    path = out / f"console-{name}-{size}.png"
    await page.screenshot(path=str(path), full_page=size == "phone")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


async def photograph(url: str, tenant: dict, out: Path) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for size, viewport in SIZES.items():
            context = await browser.new_context(
                base_url=url, viewport=viewport, color_scheme="light",
                is_mobile=size == "phone", device_scale_factor=1,
            )  # fmt: skip
            page = await context.new_page()
            await page.goto("/app/signin")
            await shoot(page, out, "signin", size)
            await page.get_by_label("Admin token").fill(tenant["admin_token"])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/app/services")
            await shoot(page, out, "services", size)
            await page.goto("/app/services/openai")
            await shoot(page, out, "service", size)
            if size == "desktop":
                await page.goto("/app/services/openai#usage-heading")
                await page.locator("#usage-heading").scroll_into_view_if_needed()
                await shoot(page, out, "usage", size)
                await page.goto("/app/settings#webhooks")
                await page.locator("#webhooks").scroll_into_view_if_needed()
                await shoot(page, out, "webhooks", size)
            await page.goto("/app/start")
            await shoot(page, out, "start", size)
            await context.close()
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedValkey(Path(tmp), appendonly=False)
        valkey.start()
        try:
            settings = Settings(
                redis_url=valkey.url, data_dir=Path(tmp),
                master_key=KeyRing.parse(base64.b64encode(os.urandom(32)).decode()),
                admin_token=OPERATOR, webhook_allow_private=True,
            )  # fmt: skip
            clock = FakeClock(time.time_ns() // 1_000_000 - 6 * DAY_MS)
            url, server, thread = serve(settings, clock)
            try:
                tenant = asyncio.run(populate(url, clock))
                asyncio.run(photograph(url, tenant, args.out))
            finally:
                server.should_exit = True
                thread.join(timeout=10)
        finally:
            valkey.stop()


if __name__ == "__main__":
    main()
