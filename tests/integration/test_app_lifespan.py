"""An app's lifespan leaves nothing behind: a process that builds apps one after another (the
test suite, an embedding host) gets each one's memory back once its lifespan has ended."""

from __future__ import annotations

import gc
import weakref

import pytest

from rotator.api.app import create_app
from tests.asgi import app_client

pytestmark = pytest.mark.backends("single")


async def _serve_once(settings, clock) -> weakref.ref:
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        # started: what it built is kept out of the collector's walks (docs/scaling.md §5)
        assert gc.get_freeze_count() > 0
    return weakref.ref(app.state.rotator)  # Litestar's own object takes no weak reference


async def test_apps_built_one_after_another_are_collected(settings, redis, clock):
    first = await _serve_once(settings, clock)
    # the module-level route handlers point at the last app that registered them
    await _serve_once(settings, clock)
    gc.collect()
    assert gc.get_freeze_count() == 0
    assert first() is None
