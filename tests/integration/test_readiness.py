"""GET /readyz: ready, the store down (503 at once), the master key wrong, recovered; a store
emptied under the running API (reported, said once in the log, marked again)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import pytest
import redis.asyncio as aioredis

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.embedded import free_port
from rotator.store import keyring, keys, migrations
from rotator.store.connection import Durability
from tests.asgi import app_client
from tests.integration.management import SECRET, deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

ALL_OK = {"store": "ok", "scripts": "ok", "master_key": "ok", "schema": "ok"}


async def as_serve_leaves_it(redis, settings, clock) -> None:
    """What `rotator serve` writes before it serves: the key-ring canary and kr:schema."""
    await keyring.unlock(redis, Durability(), settings.keyring, seals=True, now_ms=clock())
    await migrations.migrate(redis, Durability(), lambda _: None)


def lost_lines(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith("the store lost")
    ]  # fmt: skip


async def test_ready_then_store_down_then_recovered(client, redis, settings, clock):
    await as_serve_leaves_it(redis, settings, clock)
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "checks": ALL_OK}

    state = client.app.state.rotator
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


async def test_probes_answer_head_as_get_without_a_body(client, redis, settings, clock):
    await as_serve_leaves_it(redis, settings, clock)
    for path in ("/readyz", "/healthz"):
        r = await client.head(path)
        assert (r.status_code, r.content) == (200, b"")
        assert int(r.headers["content-length"]) == len((await client.get(path)).content)
    state = client.app.state.rotator
    live = state.redis
    state.redis = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    try:
        clock.advance(ms=1001)
        assert [(await client.head(p)).status_code for p in ("/readyz", "/healthz")] == [503, 503]
    finally:
        await state.redis.aclose()
        state.redis = live


async def test_a_wrong_master_key_is_not_ready(settings, redis, clock):
    await as_serve_leaves_it(redis, settings, clock)
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


async def test_an_old_store_format_is_not_ready(client, redis, settings, clock):
    await as_serve_leaves_it(redis, settings, clock)
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


@pytest.mark.backends("single")  # FLUSHALL is one node's
async def test_a_store_emptied_under_the_api_is_reported_said_and_marked_again(
    settings, redis, clock, caplog
):
    """FLUSHALL while the API runs: /readyz names what is gone, a tenant created meanwhile is
    recorded in this version's format, the store watch says it once and writes the canary
    again, and what is added afterwards is delivered."""
    await as_serve_leaves_it(redis, settings, clock)
    async with app_client(create_app(settings, clock=clock)) as client:
        assert (await client.get("/readyz")).json() == {"ready": True, "checks": ALL_OK}
        await redis.flushall()
        clock.advance(ms=1001)
        r = await client.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert (
            checks["master_key"]
            == "no key-ring canary in the store (kr:keyring): emptied or replaced?"
        )
        assert checks["schema"].startswith("no data format recorded (kr:schema)")

        t = await new_tenant(client)  # 201: the operator starts again
        assert await migrations.status(redis) == (keys.SCHEMA_VERSION, [])  # not read as format 1

        watch = client.app.state["rotator.store_watch"]
        await watch.check()  # what it does every few seconds
        await watch.check()
        assert lost_lines(caplog) == [
            "the store lost the key-ring canary (kr:keyring) while this process ran (FLUSHALL, "
            "or Valkey restarted without its data?): the tenants and keys it held are gone, "
            "their deliveries answer 403 until a backup is restored (`rotator restore`); "
            "written again for the data it holds now"
        ]
        record = await keyring.read(redis)
        assert settings.keyring.open(record.canary, keyring.CANARY_AAD)
        clock.advance(ms=1001)
        assert (await client.get("/readyz")).json() == {"ready": True, "checks": ALL_OK}

        await new_service(client, t, policy="usage")
        await new_key(client, t)
        r = await deliver(client, t.client_token)
        assert r.status_code == 200 and r.json()["key"] == SECRET

        await redis.flushall()  # a second loss is said again
        await watch.check()
        assert len(lost_lines(caplog)) == 2


@pytest.mark.backends("single")
async def test_tenants_without_a_recorded_format_are_not_stamped_current(
    settings, redis, clock, caplog
):
    """The store replaced under the API by data that records no format (an earlier version's):
    the canary is written again (nothing sealed opens otherwise), kr:schema is not, /readyz
    says so and `rotator migrate` still sees format 1."""
    await as_serve_leaves_it(redis, settings, clock)
    async with app_client(create_app(settings, clock=clock)) as client:
        await redis.flushall()
        await new_tenant(client)
        await redis.delete(keys.SCHEMA)  # as a version before kr:schema left it
        watch = client.app.state["rotator.store_watch"]
        await watch.check()
        (line,) = lost_lines(caplog)
        assert line.endswith(
            "cannot write it again: kr:schema: the store holds tenants but records no data "
            "format; `rotator migrate --check` says what it takes them for"
        )
        assert (await migrations.status(redis)).stored == 1
        assert await redis.hexists(keys.KEYRING, "canary")
        clock.advance(ms=1001)
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["master_key"] == "ok"
        assert r.json()["checks"]["schema"].startswith("no data format recorded")
