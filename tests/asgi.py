"""An HTTP client on the app in the test's own event loop (truly concurrent requests).

Litestar's AsyncTestClient runs the app through a blocking portal: requests
gathered with asyncio.gather are served one after another, so a concurrency test
on it proves nothing. Here the lifespan runs in the current loop and httpx's
ASGITransport calls the app as a coroutine per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from litestar import Litestar

PEER = ("127.0.0.1", 50000)


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """The ASGI lifespan protocol in a task of its own: pytest-asyncio may set a fixture up
    and tear it down in different tasks, which anyio's cancel scopes do not allow."""
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    outbox: asyncio.Queue[dict] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(started.get("message", "lifespan startup failed"))
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


class AppClient(httpx.AsyncClient):
    """An httpx client calling `app` directly; tests read the app's state through `app`."""

    def __init__(self, app: Litestar) -> None:
        transport = httpx.ASGITransport(app=app, client=PEER)
        super().__init__(transport=transport, base_url="http://testserver")
        self.app = app

    def another(self) -> AppClient:
        """A second client on the same (started) app, with cookies of its own: another browser."""
        return AppClient(self.app)


@contextlib.asynccontextmanager
async def app_client(app: Litestar) -> AsyncIterator[AppClient]:
    async with lifespan(app), AppClient(app) as client:
        yield client
