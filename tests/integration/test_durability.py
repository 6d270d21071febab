"""Durability: management writes are on disk when acknowledged; `kill -9` of Valkey loses none.

A management write is acknowledged (201) only after WAITAOF 1 0 on the connection
that made it reports the local fsync (rotator/store/connection.py Durability). On a
cluster, each node written gets its own WAITAOF on that node's connection. The
delivery path keeps `appendfsync everysec`: a killed *process* loses no counted
delivery (Valkey write()s the AOF before it replies), which the load test below
checks; what everysec risks is the last second on a *host* crash (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from rotator.api.app import create_app
from rotator.domain import tokens
from rotator.domain.clock import utc_day
from rotator.embedded import EmbeddedValkey
from rotator.settings import Settings
from rotator.store import keys, services, tenants
from rotator.store.cluster import Cluster
from rotator.store.connection import Durability
from tests.cluster import ValkeyCluster
from tests.conftest import T0_MS
from tests.integration.management import deliver, new_app, new_key, new_service, new_tenant


@pytest.fixture
def aof_server(tmp_path) -> Iterator[EmbeddedValkey]:
    """A single Valkey configured as the embedded default: AOF on, appendfsync everysec."""
    server = EmbeddedValkey(tmp_path / "aof")
    server.start()
    yield server
    server.stop()


async def until_healthy(client: AsyncTestClient) -> None:
    """The app's pooled connections died with the server: the first calls may 503."""
    deadline = time.monotonic() + 10
    while (await client.get("/healthz")).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover after the restart"
        await asyncio.sleep(0.02)


# --- single server, through the API ------------------------------------------------------------
async def test_every_201_survives_a_kill_9_right_after_it(aof_server, settings, clock):
    cfg = dataclasses.replace(settings, redis_url=aof_server.url)
    app = create_app(cfg, clock=clock)
    durability: Durability = app.state.rotator.durability

    async def crash_and_restart(client: AsyncTestClient) -> None:
        assert durability.supported is True  # the 201 came after a WAITAOF [1, 0]
        aof_server.kill()  # SIGKILL: no shutdown, no final fsync
        aof_server.start()
        await until_healthy(client)

    async with AsyncTestClient(app=app) as client:
        t = await new_tenant(client)
        await crash_and_restart(client)
        await new_service(client, t, max_daily_requests=1000)  # the admin token still works
        await crash_and_restart(client)
        key = await new_key(client, t)
        await crash_and_restart(client)
        web = await new_app(client, t)
        await crash_and_restart(client)

        listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
        assert [k["id"] for k in listed] == [key["id"]]
        assert [a["id"] for a in (await client.get("/v1/apps", headers=t.auth)).json()] == [
            web["id"]
        ]
        for token in (t.client_token, web["app_token"]):
            r = await deliver(client, token)
            assert r.status_code == 200, r.text
            assert r.json()["meta"]["key_id"] == key["id"]


async def test_counted_equals_delivered_across_a_kill_9_under_load(aof_server, settings, clock):
    """No 200 is lost by a process crash, and nothing is counted that was not attempted."""
    cfg = dataclasses.replace(settings, redis_url=aof_server.url, redis_timeout_ms=500)
    app = create_app(cfg, clock=clock)
    statuses: Counter[int] = Counter()
    async with AsyncTestClient(app=app) as client:
        t = await new_tenant(client)
        await new_service(client, t)
        await new_key(client, t)
        crashed = asyncio.Event()

        async def load(requests: int) -> None:
            for _ in range(requests):
                statuses[(await deliver(client, t.client_token)).status_code] += 1

        async def crash() -> None:
            while statuses[200] < 150:
                await asyncio.sleep(0.001)
            aof_server.kill()  # mid-load: requests are in flight
            crashed.set()
            await asyncio.sleep(0.05)
            aof_server.start()

        await asyncio.gather(*(load(60) for _ in range(8)), crash())
        assert crashed.is_set()
        await until_healthy(client)

    r = aioredis.Redis.from_url(aof_server.url)
    try:
        counted = int(await r.hget(keys.usage(t.id, utc_day(clock())), "s:openai") or 0)
    finally:
        await r.aclose()
    assert set(statuses) <= {200, 503} and statuses[200] + statuses[503] == 480
    # a request answered 503 may still have been counted (its reply died with the server)
    assert statuses[200] <= counted <= statuses[200] + statuses[503]


async def test_aof_turned_off_and_on_again_is_noticed_without_a_restart(aof_server, caplog):
    client = aioredis.Redis.from_url(aof_server.url)
    now = [0.0]
    durability = Durability(monotonic=lambda: now[0])

    async def write(value: int) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.set("kr:probe", value)
        await durability.execute(pipe)

    async def aof_ready() -> None:  # turned on at run time, AOF first rewrites the data
        deadline = time.monotonic() + 10
        while True:
            info = await client.info("persistence")
            if info["aof_enabled"] and not info["aof_rewrite_in_progress"]:
                return
            assert time.monotonic() < deadline, "AOF did not come back on"
            await asyncio.sleep(0.02)

    try:
        await write(1)
        assert durability.supported is True
        await client.config_set("appendonly", "no")
        await write(2)
        assert durability.supported is False
        assert "WAITAOF unavailable" in caplog.text and "WARNING" in caplog.text
        await client.config_set("appendonly", "yes")
        await aof_ready()
        await write(3)  # within the re-check interval: not asked yet
        assert durability.supported is False
        now[0] += 61
        await write(4)
        assert durability.supported is True
        assert "WAITAOF available again" in caplog.text
    finally:
        await client.aclose()


def test_the_embedded_default_is_aof_everysec(tmp_path):
    """What `rotator run` / `serve` / `worker` start without ROTATOR_REDIS_URL."""
    from rotator.cli.common import data_store

    with data_store(Settings(data_dir=tmp_path)) as live:
        assert live.redis_url is not None
        r = redis.Redis.from_url(live.redis_url)
        try:
            config = r.config_get("append*")
        finally:
            r.close()
    assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
    assert any(p.name.startswith("appendonly") for p in tmp_path.iterdir())


def test_the_compose_valkey_command_runs_aof_everysec(tmp_path):
    """docker-compose.yml's Valkey options, on the bundled server (its own port and dir)."""
    from tests.unit.test_compose import valkey_options

    options = {**valkey_options(), "--dir": str(tmp_path)}
    server = EmbeddedValkey(tmp_path, extra_args=tuple(x for kv in options.items() for x in kv))
    server.start()
    try:
        r = redis.Redis.from_url(server.url)
        config = r.config_get("append*")
        r.close()
    finally:
        server.stop()
    assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")


# --- cluster -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aof_cluster(tmp_path_factory) -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(tmp_path_factory.mktemp("aof-cluster"), appendonly=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def waitaof_calls(cluster: ValkeyCluster) -> list[int]:
    """WAITAOF calls each node has served so far."""
    stats = [c.info("commandstats").get("cmdstat_waitaof", {}) for c in cluster.clients]
    return [s.get("calls", 0) for s in stats]


def slot(key: str) -> int:
    return key_slot(key.encode())


def tenant_on(cluster: ValkeyCluster, node: int) -> str:
    """A fresh tenant id whose slot the given node serves."""
    while True:
        tenant = tokens.new_tenant_id()
        if cluster.owner(slot(keys.tag(tenant))) == node:
            return tenant


async def test_waitaof_runs_on_the_node_that_took_the_writes(aof_cluster):
    r = Cluster.from_url(aof_cluster.url)
    d = Durability()
    try:
        for node in range(3):
            tenant = tenant_on(aof_cluster, node)
            before = waitaof_calls(aof_cluster)
            await services.create_service(r, d, tenant, slug="s", policy="usage", now_ms=T0_MS)
            after = waitaof_calls(aof_cluster)
            assert [a - b for a, b in zip(after, before, strict=True)] == [
                int(i == node) for i in range(3)
            ]
            assert d.supported is True
        # a tenant's hash and the global registry: two slots, a WAITAOF on each owner (after
        # a first tenant, whose creation in an empty store also records kr:schema)
        await tenants.create_tenant(r, d, name="first", demo=False, now_ms=T0_MS)
        before = waitaof_calls(aof_cluster)
        created = await tenants.create_tenant(r, d, name="acme", demo=False, now_ms=T0_MS)
        after = waitaof_calls(aof_cluster)
        owners = {
            aof_cluster.owner(slot(keys.tag(created.id))),
            aof_cluster.owner(slot(keys.TENANTS)),
        }
        assert {i for i in range(3) if after[i] > before[i]} == owners
        assert created.id in [t.id for t in await tenants.list_tenants(r)]
    finally:
        await r.aclose()


async def test_a_write_answered_moved_is_sent_to_the_new_owner(aof_cluster):
    tenant = tenant_on(aof_cluster, 0)
    moving = slot(keys.tag(tenant))
    r = Cluster.from_url(aof_cluster.url)
    d = Durability()
    try:
        await services.create_service(r, d, tenant, slug="a", policy="usage", now_ms=T0_MS)
        aof_cluster.migrate_slot(moving, 0, 1)  # the client's slot map is now stale
        before = waitaof_calls(aof_cluster)
        await services.create_service(r, d, tenant, slug="b", policy="usage", now_ms=T0_MS)
        assert waitaof_calls(aof_cluster)[1] == before[1] + 1
        assert aof_cluster.clients[1].smembers(keys.services(tenant)) == {b"a", b"b"}
    finally:
        await r.aclose()
        aof_cluster.migrate_slot(moving, 1, 0)


def calls(cluster: ValkeyCluster, command: str) -> list[int]:
    """Calls of `command` each node has served so far."""
    stats = [c.info("commandstats").get(f"cmdstat_{command}", {}) for c in cluster.clients]
    return [s.get("calls", 0) for s in stats]


async def test_after_a_moved_the_next_write_goes_straight_to_the_new_owner(aof_cluster):
    tenant = tenant_on(aof_cluster, 0)
    moving = slot(keys.tag(tenant))
    r = Cluster.from_url(aof_cluster.url)
    d = Durability()
    try:
        await services.create_service(r, d, tenant, slug="a", policy="usage", now_ms=T0_MS)
        aof_cluster.migrate_slot(moving, 0, 2)
        await services.create_service(r, d, tenant, slug="b", policy="usage", now_ms=T0_MS)
        before = calls(aof_cluster, "eval")
        await services.create_service(r, d, tenant, slug="c", policy="usage", now_ms=T0_MS)
        after = calls(aof_cluster, "eval")
        # no second MOVED from node 0: the batch remembered where the slot went
        assert [a - b for a, b in zip(after, before, strict=True)] == [0, 0, 1]
        assert aof_cluster.clients[2].smembers(keys.services(tenant)) == {b"a", b"b", b"c"}
    finally:
        await r.aclose()
        aof_cluster.migrate_slot(moving, 2, 0)


async def test_a_plain_batch_follows_moved_without_waitaof(aof_cluster):
    """`redis.pipeline()` on a cluster (reads, session writes): the same routing, no fsync."""
    tenant = tenant_on(aof_cluster, 1)
    moving = slot(keys.tag(tenant))
    r = Cluster.from_url(aof_cluster.url)
    try:
        await r.hset(keys.tenant(tenant), "name", "acme")
        aof_cluster.migrate_slot(moving, 1, 0)
        before = waitaof_calls(aof_cluster)
        async with r.pipeline(transaction=False) as pipe:
            pipe.hset(keys.tenant(tenant), "note", "x")
            pipe.hgetall(keys.tenant(tenant))
            pipe.get("{elsewhere}:x")  # another slot, maybe another node: in order all the same
            assert await pipe.execute() == [1, {b"name": b"acme", b"note": b"x"}, None]
        assert waitaof_calls(aof_cluster) == before
    finally:
        await r.aclose()
        aof_cluster.migrate_slot(moving, 0, 1)


async def test_a_command_without_a_key_is_refused_loudly(aof_cluster):
    r = Cluster.from_url(aof_cluster.url)
    try:
        pipe = r.pipeline(transaction=False)
        pipe.ping()
        with pytest.raises(RedisClusterException, match="no key"):
            await Durability().execute(pipe)
        pipe = r.pipeline(transaction=False)
        pipe.eval("return 1", 0)
        with pytest.raises(RedisClusterException, match="without keys"):
            await pipe.execute()
    finally:
        await r.aclose()


async def test_a_redis_py_cluster_pipeline_is_not_taken_for_durable(aof_cluster):
    """redis-py's own ClusterPipeline cannot pin a WAITAOF to each node's writes."""
    r = RedisCluster.from_url(aof_cluster.url)
    try:
        pipe = r.pipeline(transaction=False)
        pipe.set("x", 1)
        with pytest.raises(TypeError, match="Cluster"):
            await Durability().execute(pipe)
    finally:
        await r.aclose()


async def test_a_write_answered_ask_goes_to_the_importing_node(aof_cluster):
    tenant = tenant_on(aof_cluster, 2)
    moving = slot(keys.tag(tenant))
    r = Cluster.from_url(aof_cluster.url)
    d = Durability()
    try:
        await r.hset(keys.tenant(tenant), mapping={"name": "acme", "client": "0" * 64})
        # a service, so every key the token's script names exists (an importing node answers
        # TRYAGAIN to a multi-key command naming a key it does not hold yet)
        await services.create_service(r, d, tenant, slug="s", policy="usage", now_ms=T0_MS)
        aof_cluster.begin_migration(moving, 2, 0)
        aof_cluster.move_keys(moving, 2, 0)  # the source now answers ASK for this tenant
        before = waitaof_calls(aof_cluster)
        # one EVAL: ASKING, EVAL there
        token = (await tenants.issue_client_token(r, d, tenant)).client_token
        assert waitaof_calls(aof_cluster)[0] == before[0] + 1
        aof_cluster.finish_migration(moving, 0)
        secret_hash = tokens.parse(token).secret_hash.encode()
        assert aof_cluster.clients[0].hget(keys.tenant(tenant), "client") == secret_hash
        assert aof_cluster.clients[0].hget(keys.service(tenant, "s"), "@client") == secret_hash
    finally:
        await r.aclose()
        aof_cluster.migrate_slot(moving, 0, 2)
