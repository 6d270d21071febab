"""POST /v1/services/{slug}/rotate is a management write: acknowledged once on disk.

It used to run on the hot-path client, without the WAITAOF every other management write waits
for (store/connection.py Durability); a crash right after its 200 could lose the rotation and
its key.rotated. Checked by counting WAITAOF calls on servers with appendonly on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis
from litestar.testing import AsyncTestClient

from rotator.api.app import create_app
from rotator.embedded import EmbeddedValkey
from rotator.store import keys, services
from rotator.store.cluster import Cluster
from rotator.store.connection import Durability
from tests.cluster import ValkeyCluster
from tests.conftest import T0_MS
from tests.integration.management import new_key, new_service, new_tenant
from tests.integration.test_durability import tenant_on, waitaof_calls


@pytest.fixture
def aof_single(tmp_path) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path / "aof")  # AOF on, appendfsync everysec: the default
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def aof_three(tmp_path_factory) -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(tmp_path_factory.mktemp("aof-rotate"), appendonly=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def commands(server: EmbeddedValkey) -> dict[str, int]:
    r = redis.Redis.from_url(server.url)
    try:
        stats = r.info("commandstats")
    finally:
        r.close()
    return {name: s["calls"] for name, s in stats.items()}


async def test_rotate_over_the_api_waits_for_the_fsync(aof_single, settings, clock):
    app = create_app(dataclasses.replace(settings, redis_url=aof_single.url), clock=clock)
    async with AsyncTestClient(app=app) as client:
        t = await new_tenant(client)
        await new_service(client, t, policy="manual")
        first, second = [await new_key(client, t, label=f"k{i}") for i in range(2)]
        before = commands(aof_single)
        r = await client.post("/v1/services/openai/rotate", headers=t.auth)
        after = commands(aof_single)
    assert r.json() == {"service": "openai", "from_key_id": first["id"], "to_key_id": second["id"]}
    grew = {name for name in after if after[name] > before.get(name, 0)}
    assert "cmdstat_waitaof" in grew
    assert "cmdstat_evalsha" not in grew  # not the hot-path client's call any more
    assert app.state.rotator.durability.supported is True


async def test_rotate_waits_on_the_cluster_node_it_wrote(aof_three):
    r = Cluster.from_url(aof_three.url)
    d = Durability()
    try:
        for node in range(3):
            tenant = tenant_on(aof_three, node)
            await services.create_service(r, d, tenant, slug="m", policy="manual", now_ms=T0_MS)
            await r.hset(keys.service(tenant, "m"), mapping={"ids": "1,2", "a:1": 1, "a:2": 1})
            before = waitaof_calls(aof_three)
            rotated = await services.rotate(r, d, tenant, "m", now_ms=T0_MS, events_maxlen=100)
            assert (rotated.from_key_id, rotated.to_key_id) == (1, 2)
            after = waitaof_calls(aof_three)
            assert [a - b for a, b in zip(after, before, strict=True)] == [
                int(i == node) for i in range(3)
            ]
    finally:
        await r.aclose()
