"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and the app served
by uvicorn on a loopback port against the session's test Valkey.

chromium is the Debian package (Playwright's own browser download cannot work here and is
never attempted): installed with apt-get when missing and running as root, otherwise the
tests fail saying how to install it. One browser serves the whole session.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from playwright.async_api import Browser, async_playwright

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.embedded import EmbeddedValkey, free_port
from rotator.settings import Settings
from tests import system_packages
from tests.conftest import OPERATOR_TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# installing chromium on a fresh machine may take a while (apt-get update)
pytestmark = pytest.mark.timeout(300)


def chromium_path() -> str:
    """chromium's path (tests/system_packages.py: installed when missing and running as root)."""
    return system_packages.require("chromium", "chromium", (CHROMIUM,))


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@dataclass
class LiveServer:
    url: str
    settings: Settings

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    async def new_tenant(self, name: str) -> dict:
        """A tenant named `name`, or `name 2` … where a test before took it (one store for
        the session; tenant names are unique)."""
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        async with self.api() as c:
            for n in range(1, 100):
                tried = name if n == 1 else f"{name} {n}"
                r = await c.post("/v1/admin/tenants", json={"name": tried}, headers=auth)
                if r.status_code != 409:
                    break
            assert r.status_code == 201, r.text
            return r.json()


@pytest.fixture(scope="session")
def console_valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    """The live server's own store: it runs for the whole session with its background tasks
    (the store watch writes the key-ring canary back into a store emptied under it), so it
    must not share the store other tests flush."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("console-valkey"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server(
    console_valkey: EmbeddedValkey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The whole app under uvicorn in a thread of its own (its own event loop)."""
    valkey = console_valkey
    settings = Settings(
        redis_url=valkey.url,
        data_dir=tmp_path_factory.mktemp("console"),
        master_key=KeyRing.parse(base64.b64encode(os.urandom(32)).decode()),
        admin_token=OPERATOR_TOKEN,
        webhook_allow_private=True,
        redis_timeout_ms=2000,
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def store(live_server: LiveServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the live server's store, in the test's loop (not flushed: tenants are
    new per test)."""
    client = aioredis.Redis.from_url(live_server.settings.redis_url or "")
    yield client
    await client.aclose()
