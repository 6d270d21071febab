"""GET /readyz: ready, the store down (503 at once), the master key wrong, recovered."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
import redis.asyncio as aioredis

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.embedded import free_port
from rotator.store import keyring, keys
from rotator.store.connection import Durability
from tests.asgi import app_client

pytestmark = pytest.mark.backends("single", "cluster")

ALL_OK = {"store": "ok", "scripts": "ok", "master_key": "ok", "schema": "ok"}


async def test_ready_then_store_down_then_recovered(client, clock):
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "checks": ALL_OK}

    state = client._transport.app.state.rotator  # type: ignore[attr-defined]
    live = state.redis
    state.redis = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    try:
        assert (await client.get("/readyz")).status_code == 200  # the answer of a second ago
        clock.advance(ms=1001)
        started = time.monotonic()
        r = await client.get("/readyz")
        assert time.monotonic() - started < 1  # refused at once, not a timeout
        assert r.status_code == 503
        assert r.json()["ready"] is False
        assert r.json()["error"] == "not ready: store unreachable"
        assert r.json()["checks"]["store"] == "unreachable"
    finally:
        await state.redis.aclose()
        state.redis = live
    clock.advance(ms=1001)
    assert (await client.get("/readyz")).json() == {"ready": True, "checks": ALL_OK}


async def test_a_wrong_master_key_is_not_ready(settings, redis, clock):
    await keyring.unlock(redis, Durability(), settings.keyring, seals=True, now_ms=clock())
    wrong = dataclasses.replace(
        settings, master_key=KeyRing.parse(__import__("base64").b64encode(os.urandom(32)).decode())
    )
    async with app_client(create_app(wrong, clock=clock)) as client:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["master_key"] == (
            "does not open the store's key-ring canary (kr:keyring)"
        )
        assert r.json()["checks"]["store"] == "ok"
    async with app_client(create_app(settings, clock=clock)) as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_an_old_store_format_is_not_ready(client, redis, clock):
    await redis.set(keys.SCHEMA, keys.SCHEMA_VERSION - 1)
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["schema"].endswith("run `rotator migrate`")
    await redis.set(keys.SCHEMA, keys.SCHEMA_VERSION)
    clock.advance(ms=1001)
    assert (await client.get("/readyz")).status_code == 200


async def test_an_unreadable_store_format_is_not_ready_and_named(client, redis):
    await redis.set(keys.SCHEMA, "garbage")
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["schema"] == "kr:schema holds no data format version"
