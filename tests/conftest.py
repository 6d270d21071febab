"""Shared fixtures: one real Valkey (bundled binary, random port, temp dir) per session.

Each test gets a flushed database. Settings are built explicitly (never from the
process environment) so tests cannot pick up a developer's configuration.

Backends: `settings`, `redis` and `client` follow the `backend` fixture, "single"
unless a test (or its module, through `pytestmark`) is marked
`@pytest.mark.backends("single", "cluster")`: it then runs once per backend, ids
`[single]` and `[cluster]`. On "cluster" the data lives on the three-primary
`valkey_cluster` (REDIS_CLUSTER=1, `redis` is a RedisCluster client, every primary
flushed per test) and the arq queue on the single server (QUEUE_URL).
"""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from rotator.api.app import create_app
from rotator.cli.webhook_listen import Receiver
from rotator.crypto import KeyRing
from rotator.domain.clock import FakeClock
from rotator.embedded import EmbeddedValkey
from rotator.settings import Settings
from rotator.store.cluster import Cluster
from tests.asgi import AppClient, app_client
from tests.cluster import valkey_cluster  # noqa: F401  (session fixture)
from tests.tls import tls_cluster, tls_pki, tls_valkey  # noqa: F401  (session fixtures)

OPERATOR_TOKEN = "operator-test-token-0123456789abcdef"
# 2026-03-01T12:00:00Z: far from a UTC midnight unless a test moves it there
T0_MS = 1_772_366_400_000


BACKENDS = ("single", "cluster")


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a script (`make test &`) has SIGINT ignored, and
    # every child inherits that, so the Ctrl-C tests would wait for a child that cannot
    # hear it. A handled SIGINT is reset to the default in each child at exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers", "backends(*names): run the test once per data-store backend (single, cluster)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "backend" in metafunc.fixturenames:
        unknown = set(marker.args) - set(BACKENDS)
        assert not unknown, f"unknown backends {unknown}"
        metafunc.parametrize("backend", marker.args, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """ "single" (one Valkey) or "cluster" (three primaries); see the module docstring."""
    return getattr(request, "param", "single")


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
def settings(
    backend: str,
    valkey: EmbeddedValkey,
    master_key_b64: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Settings:
    store: dict[str, Any] = {"redis_url": valkey.url}
    if backend == "cluster":
        cluster_url = request.getfixturevalue("valkey_cluster").url
        store = {"redis_url": cluster_url, "redis_cluster": True, "queue_url": valkey.url}
    return Settings(
        **store,
        data_dir=tmp_path,
        master_key=KeyRing.parse(master_key_b64),
        admin_token=OPERATOR_TOKEN,
        webhook_allow_private=True,
        redis_timeout_ms=2000,
    )


@pytest.fixture
async def redis(
    backend: str, valkey: EmbeddedValkey, request: pytest.FixtureRequest
) -> AsyncIterator[aioredis.Redis | Cluster]:
    client = aioredis.Redis.from_url(valkey.url)
    await client.flushall()  # on "cluster" it holds the queue: flushed too
    await client.script_flush()
    if backend == "cluster":
        await client.aclose()
        cluster = request.getfixturevalue("valkey_cluster")
        cluster.flush()
        client = Cluster.from_url(cluster.url)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0_MS)


@pytest.fixture
async def client(
    settings: Settings, redis: aioredis.Redis, clock: FakeClock
) -> AsyncIterator[AppClient]:
    """The whole app over ASGI in the test's loop (gathered requests really run concurrently),
    with an injected clock, on the flushed test database; the peer is 127.0.0.1."""
    async with app_client(create_app(settings, clock=clock)) as test_client:
        yield test_client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback (rotator/cli/webhook_listen.py), recording what arrives."""
    r = await Receiver().start()
    yield r
    await r.close()
