"""Shared fixtures: one real Valkey (bundled binary, random port, temp dir) per session.

Each test gets a flushed database. Settings are built explicitly (never from the
process environment) so tests cannot pick up a developer's configuration.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.domain.clock import FakeClock
from rotator.embedded import EmbeddedValkey
from rotator.settings import Settings
from tests.cluster import valkey_cluster  # noqa: F401  (session fixture)

OPERATOR_TOKEN = "operator-test-token-0123456789abcdef"
# 2026-03-01T12:00:00Z: far from a UTC midnight unless a test moves it there
T0_MS = 1_772_366_400_000


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def master_key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def settings(valkey: EmbeddedValkey, master_key_b64: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=valkey.url,
        data_dir=tmp_path,
        master_key=KeyRing.parse(master_key_b64),
        admin_token=OPERATOR_TOKEN,
        webhook_allow_private=True,
        redis_timeout_ms=2000,
    )


@pytest.fixture
async def redis(valkey: EmbeddedValkey) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(valkey.url)
    await client.flushall()
    await client.script_flush()
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0_MS)


@pytest.fixture
async def client(settings: Settings, redis: aioredis.Redis, clock: FakeClock) -> AsyncIterator[AsyncTestClient]:
    """The whole app over ASGI, with an injected clock, on the flushed test database."""
    app = create_app(settings, clock=clock)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
