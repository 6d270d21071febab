"""NOSCRIPT and a Redis outage, seen from the delivery endpoint: no restart needed."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from rotator.api.app import create_app
from rotator.domain import tokens
from rotator.embedded import EmbeddedValkey
from rotator.store import keys
from tests.lua import seed


async def seed_tenant(r: aioredis.Redis, settings) -> str:
    t = await seed.tenant(r)
    minted = tokens.mint_client(t.tenant)
    await r.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(r, t, "s", policy="usage")
    await seed.key(r, settings.keyring, t, "s", "sk-resilient-000000000")
    return minted.token


async def test_script_flush_mid_run_is_invisible(client: AsyncTestClient, redis, settings):
    token = await seed_tenant(redis, settings)

    async def load(n: int) -> list[int]:
        out = []
        for _ in range(n):
            r = await client.get("/v1/next", params={"service": "s", "token": token})
            out.append(r.status_code)
        return out

    async def flusher() -> None:
        for _ in range(5):
            await asyncio.sleep(0.01)
            await redis.script_flush()

    results = await asyncio.gather(*(load(40) for _ in range(8)), flusher())
    statuses = Counter(s for batch in results[:-1] for s in batch)
    assert statuses == {200: 320}


async def test_redis_down_gives_fast_503_then_recovers(tmp_path, settings, clock):
    server = EmbeddedValkey(tmp_path / "v", appendonly=True)
    server.start()
    cfg = dataclasses.replace(settings, redis_url=server.url, redis_timeout_ms=500)
    r = aioredis.Redis.from_url(server.url)
    token = await seed_tenant(r, cfg)
    await r.execute_command("WAITAOF", 1, 0, 1000)  # the restart below must find the seed
    await r.aclose()
    try:
        async with AsyncTestClient(app=create_app(cfg, clock=clock)) as client:
            params = {"service": "s", "token": token}
            assert (await client.get("/v1/next", params=params)).status_code == 200

            server.kill()
            started = time.monotonic()
            for _ in range(5):
                resp = await client.get("/v1/next", params=params)
                assert (resp.status_code, resp.json()) == (503, {"error": "store unavailable"})
            # five requests while down, each bounded by the connect timeout or failing fast
            assert time.monotonic() - started < 5 * 0.5 + 1
            health = await client.get("/healthz")
            assert health.status_code == 503

            server.start()
            deadline = time.monotonic() + 10
            while True:
                resp = await client.get("/v1/next", params=params)
                if resp.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert resp.status_code == 200
            assert (await client.get("/healthz")).status_code == 200
    finally:
        server.stop()


async def test_started_while_redis_is_down_answers_503_then_recovers(tmp_path, settings, clock):
    """A process (re)started during an outage serves 503s instead of exiting, then recovers."""
    server = EmbeddedValkey(tmp_path / "v", appendonly=False)
    cfg = dataclasses.replace(settings, redis_url=server.url, redis_timeout_ms=300)
    async with AsyncTestClient(app=create_app(cfg, clock=clock)) as client:
        params = {"service": "s", "token": "krc_abc_def"}
        for path in ("/v1/next", "/healthz"):
            resp = await client.get(path, params=params)
            assert resp.status_code == 503, path
        server.start()
        try:
            r = aioredis.Redis.from_url(server.url)
            token = await seed_tenant(r, cfg)
            await r.aclose()
            deadline = time.monotonic() + 10
            while True:
                resp = await client.get("/v1/next", params={"service": "s", "token": token})
                if resp.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert resp.status_code == 200
        finally:
            server.stop()


async def test_reports_while_redis_is_down_get_fast_503s_then_recover(tmp_path, settings, clock):
    """POST /v1/report rides the delivery store's connection: the same 503 store unavailable
    (with Retry-After) during an outage, and reports land again once the store is back."""
    server = EmbeddedValkey(tmp_path / "v", appendonly=True)
    server.start()
    cfg = dataclasses.replace(settings, redis_url=server.url, redis_timeout_ms=500)
    r = aioredis.Redis.from_url(server.url)
    token = await seed_tenant(r, cfg)
    await r.execute_command("WAITAOF", 1, 0, 1000)
    await r.aclose()
    body = {"service": "s", "key_id": 1, "status": 429, "retry_after": 5}
    try:
        async with AsyncTestClient(app=create_app(cfg, clock=clock)) as client:
            params = {"token": token}
            assert (await client.post("/v1/report", json=body, params=params)).status_code == 202
            server.kill()
            resp = await client.post("/v1/report", json=body, params=params)
            assert (resp.status_code, resp.json()) == (503, {"error": "store unavailable"})
            assert resp.headers["retry-after"] == "1"
            server.start()
            deadline = time.monotonic() + 10
            while True:
                resp = await client.post("/v1/report", json=body, params=params)
                if resp.status_code == 202 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert (resp.status_code, resp.json()["state"]) == (202, "cooling_down")
    finally:
        server.stop()
