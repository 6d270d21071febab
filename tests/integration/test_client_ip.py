"""Client address over real sockets: the peer, or X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import dataclasses
import ipaddress

import httpx
import pytest

from rotator.api.app import create_app
from rotator.domain import tokens
from rotator.store import keys
from tests.asgi import app_client
from tests.live import env_for, live_api
from tests.lua import seed


@pytest.fixture
async def tenant_token(redis, settings):
    """A tenant whose allowlist admits only 203.0.113.0/24 (never loopback)."""
    t = await seed.tenant(redis, allow=["203.0.113.0/24"])
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-xff-000000000000")
    return minted.token


def get(base: str, token: str, xff: str | None) -> int:
    headers = {"X-Forwarded-For": xff} if xff else {}
    return httpx.get(
        base + "/v1/next", params={"service": "s", "token": token}, headers=headers
    ).status_code


def test_forwarded_for_ignored_from_untrusted_peer(valkey, master_key_b64, tenant_token):
    with live_api(env_for(valkey.url, master_key_b64)) as base:
        assert get(base, tenant_token, None) == 403
        assert (
            get(base, tenant_token, "203.0.113.5") == 403
        )  # spoofed: peer 127.0.0.1 is not trusted


def test_forwarded_for_from_trusted_proxy(valkey, master_key_b64, tenant_token):
    env = env_for(valkey.url, master_key_b64, trusted_proxies="127.0.0.1/32, 10.0.0.0/8")
    with live_api(env) as base:
        assert get(base, tenant_token, "203.0.113.5") == 200
        # proxy chain: client, then another trusted proxy; the right-most untrusted hop counts
        assert get(base, tenant_token, "203.0.113.5, 10.1.1.1") == 200
        # a client forging a left-most entry gains nothing: its real address is appended
        assert get(base, tenant_token, "203.0.113.5, 198.51.100.9") == 403
        assert get(base, tenant_token, "198.51.100.9, 203.0.113.5") == 200
        assert get(base, tenant_token, None) == 403  # no header: the proxy itself is the client


# --- several X-Forwarded-For lines are one list (RFC 9110 §5.3) -------------------------------
# a client's forged line first, then the line its proxy appended (HAProxy `option forwardfor`)
FORGED_THEN_REAL = [("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-For", "8.8.8.8")]
REAL_LAST = [("X-Forwarded-For", "8.8.8.8"), ("X-Forwarded-For", "10.1.2.3")]


@pytest.fixture
async def allow_10_1_2(redis, settings):
    """A client token of a tenant whose allowlist admits only 10.1.2.0/24."""
    t = await seed.tenant(redis, allow=["10.1.2.0/24"])
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-xff-lines-000000000")
    return minted.token


@pytest.mark.backends("single", "cluster")
async def test_every_forwarded_for_line_is_read(allow_10_1_2, settings, clock):
    trusted = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with app_client(create_app(trusted, clock=clock)) as client:
        params = {"service": "s", "token": allow_10_1_2}
        r = await client.get("/v1/next", params=params, headers=FORGED_THEN_REAL)
        assert (r.status_code, r.json()) == (403, {"error": "ip not allowed"})
        r = await client.get("/v1/next", params=params, headers=REAL_LAST)
        assert r.status_code == 200, r.text


def test_every_forwarded_for_line_is_read_over_sockets(valkey, master_key_b64, allow_10_1_2):
    env = env_for(valkey.url, master_key_b64, trusted_proxies="127.0.0.1/32")
    with live_api(env) as base:
        url, params = base + "/v1/next", {"service": "s", "token": allow_10_1_2}
        r = httpx.get(url, params=params, headers=FORGED_THEN_REAL)
        assert (r.status_code, r.json()) == (403, {"error": "ip not allowed"})
        assert httpx.get(url, params=params, headers=REAL_LAST).status_code == 200


def test_a_proxy_named_by_host_is_trusted(valkey, master_key_b64, tenant_token):
    """docker-compose.yml's way: ROTATOR_TRUSTED_PROXIES=nginx (here: localhost)."""
    with live_api(env_for(valkey.url, master_key_b64, trusted_proxies="localhost")) as base:
        assert get(base, tenant_token, "203.0.113.5") == 200
        assert get(base, tenant_token, "203.0.113.5, 198.51.100.9") == 403
