"""A real API process for the client's integration tests (tests/integration/test_client_*.py),
shared by a module, and a tenant seeded per test on the flushed store."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from rotator.domain import tokens
from rotator.store import keys
from tests.live import env_for, live_api
from tests.lua import seed

SECRETS = ["sk-proj-clientclientclientclient0001", "sk-proj-clientclientclientclient0002"]

DEMO_BURST = 2
"""The live API throttles demo traffic to this burst and one request a minute after it."""


def live_env(valkey_url: str, master_key_b64: str) -> dict[str, str]:
    return env_for(valkey_url, master_key_b64, demo_burst=str(DEMO_BURST), demo_rate_per_min="1")


__all__ = ["live_api", "live_env"]


@dataclass
class Tenant:
    seeded: seed.Seeded
    client_token: str
    key_ids: list[int]


async def tenant(redis, settings, *, keys_n: int = 2, max_daily=None, **tenant_kw) -> Tenant:
    """A tenant with a service `openai` (usage policy) holding `keys_n` keys, and its token."""
    t = await seed.tenant(redis, **tenant_kw)
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "openai", policy="usage", max_daily=max_daily)
    for n, secret in enumerate(SECRETS[:keys_n]):
        await seed.key(redis, settings.keyring, t, "openai", secret, label=f"k{n + 1}")
    return Tenant(t, minted.token, list(t.key_ids))


async def app_token(redis, t: Tenant, **app_kw) -> str:
    app = await seed.app(redis, t.seeded, **app_kw)
    minted = tokens.mint_app(t.seeded.tenant, app.app)
    await redis.hset(keys.app(t.seeded.tenant, app.app), "token", minted.secret_hash)
    return minted.token


class CountingTransport(httpx.HTTPTransport):
    """httpx's own transport, counting the TCP connections it opens (httpcore's documented
    `trace` request extension)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions["trace"] = self._trace
        return super().handle_request(request)

    def _trace(self, event: str, info: dict) -> None:
        if event == "connection.connect_tcp.complete":
            self.connections += 1


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions["trace"] = self._trace
        return await super().handle_async_request(request)

    async def _trace(self, event: str, info: dict) -> None:
        if event == "connection.connect_tcp.complete":
            self.connections += 1
