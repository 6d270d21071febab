"""GET /v1/next over the whole app: parameters, response contract, the error table."""

from __future__ import annotations

import asyncio
import base64
import os
from collections import Counter

import httpx
import pytest
from litestar.testing import AsyncTestClient

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.domain import tokens
from rotator.domain.clock import utc_day
from rotator.domain.masking import BULLET
from rotator.store import keys
from rotator.store.delivery import DeliveryStore
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyzZZZZ"
PATHS = ["/v1/next", "/keyrotator/api/next.php"]


async def seeded(redis, settings, **tenant_kw):
    """A tenant with service `openai` (usage, 10000/day) and one key; returns (seeded, token)."""
    t = await seed.tenant(redis, **tenant_kw)
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "openai", policy="usage", max_daily=10000)
    await seed.key(redis, settings.keyring, t, "openai", SECRET, label="Primary")
    return t, minted.token


@pytest.mark.parametrize("path", PATHS)
async def test_contract_of_a_delivery(client: httpx.AsyncClient, redis, settings, path):
    t, token = await seeded(redis, settings)
    r = await client.get(path, params={"service": "openai", "token": token})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {
        "service": "openai",
        "key_label": "Primary",
        "key": SECRET,
        "masked": False,
        "policy": "usage",
        "limits": {"max_daily_requests": 10000},
        "meta": {"key_id": t.key_ids[0], "usage_today": 1},
    }
    assert list(r.json()) == ["service", "key_label", "key", "masked", "policy", "limits", "meta"]


async def test_mask_keeps_prefix_and_last_four(client, redis, settings):
    _, token = await seeded(redis, settings)
    body = (
        await client.get("/v1/next", params={"service": "openai", "token": token, "mask": "1"})
    ).json()
    assert body["masked"] is True
    assert body["key"] == "sk-proj-" + BULLET * (len(SECRET) - 12) + "ZZZZ"


@pytest.mark.parametrize(
    ("query", "masked"),
    [
        ("mask=0&mask=1", True),  # `&mask=1` added to a URL holding mask=0, as the guide says
        ("mask=1&mask=0", True),
        ("mask=true", True),
        ("mask=TRUE", True),
        ("mask=yes", True),
        ("mask=On", True),
        ("mask=0", False),
        ("mask=", False),
        ("", False),
    ],
)
async def test_any_value_that_masks_masks(client, redis, settings, query, masked):
    _, token = await seeded(redis, settings)
    r = await client.get(f"/keyrotator/api/next.php?service=openai&token={token}&{query}")
    assert (r.json()["masked"], SECRET in r.text) == (masked, not masked)


async def test_demo_tenant_always_masks(client, redis, settings):
    _, token = await seeded(redis, settings, demo=True)
    body = (
        await client.get("/v1/next", params={"service": "openai", "token": token, "mask": "0"})
    ).json()
    assert body["masked"] is True and SECRET not in body["key"]


async def test_bearer_header_and_app_token_precedence(client, redis, settings):
    t, token = await seeded(redis, settings)
    app = await seed.app(redis, t, max_daily=1)
    minted = tokens.mint_app(t.tenant, app.app)
    await redis.hset(keys.app(t.tenant, app.app), "token", minted.secret_hash)

    r = await client.get(
        "/v1/next", params={"service": "openai"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200
    # app_token overrides token: the app's own limit (1/day) applies
    params = {"service": "openai", "token": token, "app_token": minted.token}
    assert (await client.get("/v1/next", params=params)).status_code == 200
    r = await client.get("/v1/next", params=params)
    assert (r.status_code, r.json()) == (
        429, {"error": "service daily limit reached", "limit": "app", "retry_after": 43_200}
    )  # fmt: skip
    # a bad query token is not rescued by a good header: the query is what the caller meant
    r = await client.get(
        "/v1/next",
        params={"service": "openai", "token": "krc_nope_x"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "params",
    [{}, {"service": "openai"}, {"token": "krc_a_b"}, {"service": "", "token": "krc_a_b"}],
)
async def test_400_missing_params(client, params):
    r = await client.get("/v1/next", params=params)
    assert (r.status_code, r.json()) == (400, {"error": "missing token or service"})


@pytest.mark.parametrize("token", ["garbage", "krc_", "krc_UPPER_x", "kra_t_notnum_x", "x" * 300])
async def test_403_malformed_token(client, token):
    r = await client.get("/v1/next", params={"service": "openai", "token": token})
    assert (r.status_code, r.json()) == (403, {"error": "invalid token"})


async def test_403_admin_token_is_not_a_client_token(client, redis, settings):
    t, _ = await seeded(redis, settings)
    r = await client.get("/v1/next", params={"service": "openai", "token": f"kta_{t.tenant}_x"})
    assert (r.status_code, r.json()) == (403, {"error": "invalid token"})


async def test_error_table(client, redis, settings):
    t, token = await seeded(redis, settings)
    q = {"token": token}
    r = await client.get("/v1/next", params={**q, "service": "nope"})
    assert (r.status_code, r.json()) == (404, {"error": "unknown service"})

    await seed.service(redis, t, "empty", policy="manual")
    r = await client.get("/v1/next", params={**q, "service": "empty"})
    assert (r.status_code, r.json()) == (503, {"error": "no active keys"})

    await seed.service(redis, t, "capped", policy="usage", max_daily=1)
    await seed.key(redis, settings.keyring, t, "capped", "sk-capped-0000000000")
    assert (await client.get("/v1/next", params={**q, "service": "capped"})).status_code == 200
    r = await client.get("/v1/next", params={**q, "service": "capped"})
    assert (r.status_code, r.json()) == (
        429, {"error": "service daily limit reached", "limit": "service", "retry_after": 43_200}
    )  # fmt: skip
    assert r.headers["retry-after"] == "43200"  # 12:00 UTC: half a day to the next

    await seed.tenant_fields(redis, t.tenant, allow="f" * 64)
    r = await client.get("/v1/next", params={**q, "service": "openai"})
    assert (r.status_code, r.json()) == (403, {"error": "ip not allowed"})


async def test_429_demo_rate_limit_with_retry_after(client, redis, settings):
    _, token = await seeded(redis, settings, demo=True)
    statuses = Counter()
    last = None
    for _ in range(settings.demo_burst + 3):
        last = await client.get("/v1/next", params={"service": "openai", "token": token})
        statuses[last.status_code] += 1
    assert statuses == {200: settings.demo_burst, 429: 3}
    assert last.json() == {"error": "demo rate limit"}
    assert int(last.headers["retry-after"]) >= 1


async def test_500_key_decrypt_failed_logs_no_secret(client, redis, settings, caplog):
    t, token = await seeded(redis, settings)
    other_ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    await seed.service(redis, t, "foreign", policy="usage")
    await seed.key(redis, other_ring, t, "foreign", "sk-foreign-secret-123456")
    r = await client.get("/v1/next", params={"service": "foreign", "token": token})
    assert (r.status_code, r.json()) == (500, {"error": "key decrypt failed"})
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "decrypt failed" in logged
    assert token not in logged and "sk-foreign" not in logged


async def test_ciphertext_moved_to_another_key_fails(client, redis, settings):
    t, token = await seeded(redis, settings)
    await seed.service(redis, t, "two", policy="manual")
    a = await seed.key(redis, settings.keyring, t, "two", "sk-a-000000000000")
    b = await seed.key(redis, settings.keyring, t, "two", "sk-b-000000000000")
    svc = keys.service(t.tenant, "two")
    await redis.hset(svc, f"c:{a}", await redis.hget(svc, f"c:{b}"))
    r = await client.get("/v1/next", params={"service": "two", "token": token})
    assert r.status_code == 500


async def test_concurrent_service_limit_is_exact(client, redis, settings, clock, monkeypatch):
    t, token = await seeded(redis, settings)
    await seed.service(redis, t, "lim", policy="usage", max_daily=50)
    for i in range(3):
        await seed.key(redis, settings.keyring, t, "lim", f"sk-lim-{i}-0000000000")
    in_flight = peak = 0
    real_pick = DeliveryStore.pick  # what the handler calls: next_key, refusals returned

    async def counting(self, *args):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real_pick(self, *args)
        finally:
            in_flight -= 1

    monkeypatch.setattr(DeliveryStore, "pick", counting)
    rs = await asyncio.gather(
        *(client.get("/v1/next", params={"service": "lim", "token": token}) for _ in range(200))
    )
    assert peak > 100  # the requests really overlapped in the store
    assert Counter(r.status_code for r in rs) == {200: 50, 429: 150}
    assert await redis.hget(keys.usage(t.tenant, utc_day(clock())), "s:lim") == b"50"


async def test_concurrent_app_and_key_limits_are_exact(client, redis, settings, clock):
    t, token = await seeded(redis, settings)
    await seed.service(redis, t, "k", policy="manual")
    kid = await seed.key(redis, settings.keyring, t, "k", "sk-k-0000000000", max_daily=50)
    rs = await asyncio.gather(
        *(client.get("/v1/next", params={"service": "k", "token": token}) for _ in range(200))
    )
    assert Counter(r.status_code for r in rs) == {200: 50, 429: 150}
    use = keys.usage(t.tenant, utc_day(clock()))
    assert await redis.hget(use, f"k:{kid}") == b"50"

    app = await seed.app(redis, t, max_daily=50)
    minted = tokens.mint_app(t.tenant, app.app)
    await redis.hset(keys.app(t.tenant, app.app), "token", minted.secret_hash)
    rs = await asyncio.gather(
        *(
            client.get("/v1/next", params={"service": "openai", "app_token": minted.token})
            for _ in range(200)
        )
    )
    assert Counter(r.status_code for r in rs) == {200: 50, 429: 150}
    assert await redis.hget(use, f"a:{app.app}") == b"50"


async def test_usage_balance_over_http(client, redis, settings):
    t, token = await seeded(redis, settings)
    await seed.service(redis, t, "bal", policy="usage")
    for i in range(3):
        await seed.key(redis, settings.keyring, t, "bal", f"sk-bal-{i}-0000000000")
    rs = await asyncio.gather(
        *(client.get("/v1/next", params={"service": "bal", "token": token}) for _ in range(300))
    )
    counts = Counter(r.json()["meta"]["key_id"] for r in rs)
    assert all(99 <= n <= 101 for n in counts.values()) and len(counts) == 3


@pytest.mark.backends("single")  # MONITOR watches one server
async def test_one_redis_command_per_delivery(settings, redis, clock):
    """MONITOR sees exactly one client command per delivery (script-internal calls excluded)."""
    _t, token = await seeded(redis, settings)
    app = create_app(settings, clock=clock)
    async with AsyncTestClient(app=app) as client:
        await client.get("/v1/next", params={"service": "openai", "token": token})  # warm up
        seen: list[dict] = []
        ready = asyncio.Event()

        async def watch():
            async with redis.monitor() as m:
                ready.set()
                async for cmd in m.listen():
                    seen.append(cmd)

        watcher = asyncio.create_task(watch())
        await ready.wait()
        await asyncio.sleep(0.05)  # MONITOR is live once its OK was read; let it settle
        n = 20
        for _ in range(n):
            assert (
                await client.get("/v1/next", params={"service": "openai", "token": token})
            ).status_code == 200
        await redis.set("monitor-end-marker", 1)
        for _ in range(100):
            if any("monitor-end-marker" in c["command"] for c in seen):
                break
            await asyncio.sleep(0.01)
        watcher.cancel()
    # the app's connections are those that sent the script; the test's own client also shows up
    app_ports = {c["client_port"] for c in seen if c["command"].startswith("EVALSHA")}
    client_cmds = [
        c["command"].split()[0]
        for c in seen
        if c["client_port"] in app_ports and c.get("client_type") != "lua"
    ]
    assert client_cmds == ["EVALSHA"] * n


async def test_request_id_is_honoured_only_from_trusted_proxies(redis, settings, clock):
    import dataclasses
    import ipaddress

    from tests.asgi import app_client

    t, token = await seeded(redis, settings)
    params = {"service": "openai", "token": token}
    retry = {"X-Request-ID": "0123456789abcdef0123456789abcdef"}
    proxied = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with app_client(create_app(proxied, clock=clock)) as behind_proxy:
        first = (await behind_proxy.get("/v1/next", params=params, headers=retry)).json()
        again = (await behind_proxy.get("/v1/next", params=params, headers=retry)).json()
    assert first["meta"] == again["meta"] == {"key_id": t.key_ids[0], "usage_today": 1}
    async with app_client(create_app(settings, clock=clock)) as direct:  # no trusted proxy
        third = (await direct.get("/v1/next", params=params, headers=retry)).json()
    assert third["meta"]["usage_today"] == 2
