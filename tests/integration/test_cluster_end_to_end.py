"""Cluster mode end to end: REDIS_CLUSTER=1, the data on three primaries, the queue elsewhere.

Workers: the API records events in the tenants' streams on the cluster, the event
pump reads them there and enqueues on the queue server, the delivery job loads the
tenant's webhook from the cluster and posts it; the expiry sweep scripts run on each
tenant's slot. Tenants are spread until they sit on at least two cluster nodes.
The CLI administers the cluster given any one node's URL. Resharding: Valkey 9's
atomic slot migration is invisible to deliveries; the classic protocol answers 503.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from rotator.domain.clock import utc_day
from rotator.store import keys
from tests.conftest import T0_MS
from tests.integration.cli_support import base_env
from tests.integration.management import Tenant, deliver, new_key, new_service, new_tenant
from tests.integration.webhook_support import FAST, verify_signature, worker
from workers.pump import EventPump
from workers.settings import queue_url
from workers.sweep import sweep_time_services

pytestmark = pytest.mark.backends("cluster")

TTL_MIN = 5
SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="


async def webhook_tenants_on_two_nodes(client, valkey_cluster, url: str) -> list[Tenant]:
    """Tenants with a webhook (all events), created until two cluster nodes hold some."""
    made: list[Tenant] = []
    owners: set[int] = set()
    while len(owners) < 2 or len(made) < 3:
        t = await new_tenant(client, name=f"t{len(made)}")
        body = {
            "webhook_url": url,
            "webhook_events": ["key.delivered", "key.expired"],
            "webhook_secret": SECRET,
        }
        r = await client.patch("/v1/tenant", json=body, headers=t.auth)
        assert r.status_code == 200, r.text
        made.append(t)
        owners.add(valkey_cluster.owner(key_slot(keys.tag(t.id).encode())))
    return made


async def test_pump_and_delivery_read_the_cluster_queue_on_queue_url(
    client, redis, settings, valkey, valkey_cluster, receiver
):
    assert queue_url(settings) == valkey.url != settings.redis_url
    tenants = await webhook_tenants_on_two_nodes(client, valkey_cluster, receiver.url)
    for t in tenants:
        await new_service(client, t)
        await new_key(client, t)
        for _ in range(2):
            assert (await deliver(client, t.client_token)).status_code == 200

    queue = aioredis.Redis.from_url(valkey.url)
    try:
        moved = await EventPump(redis, queue, FAST).pump_once()
        assert moved == 2 * len(tenants)
        assert await queue.zcard("arq:queue") == moved  # the jobs are on the queue server
        async with worker(settings) as w:
            await w.async_run()
    finally:
        await queue.aclose()

    got = await receiver.wait_for(moved)
    by_tenant: dict[str, int] = {}
    for request in got:
        body = json.loads(request.body)
        assert body["type"] == "key.delivered"
        by_tenant[body["tenant"]] = by_tenant.get(body["tenant"], 0) + 1
    assert by_tenant == {t.id: 2 for t in tenants}
    assert all(verify_signature(SECRET, r.headers, r.body) for r in got)


async def test_sweep_runs_each_tenants_script_on_its_slot(
    client, redis, settings, clock, valkey, valkey_cluster, receiver
):
    tenants = await webhook_tenants_on_two_nodes(client, valkey_cluster, receiver.url)
    for t in tenants:
        await new_service(client, t, policy="time", key_ttl_minutes=TTL_MIN)
        await new_key(client, t)
        assert (await deliver(client, t.client_token)).status_code == 200  # enters rotation
    ctx = {"settings": settings, "config": FAST, "data": redis, "clock": clock}

    clock.advance(minutes=TTL_MIN)
    assert await sweep_time_services(ctx) == len(tenants)
    assert await sweep_time_services(ctx) == 0  # once per key

    queue = aioredis.Redis.from_url(valkey.url)
    try:
        await EventPump(redis, queue, FAST).pump_once()
        async with worker(settings) as w:
            await w.async_run()
    finally:
        await queue.aclose()
    expired = [
        json.loads(r.body) for r in receiver.received if json.loads(r.body)["type"] == "key.expired"
    ]
    assert sorted(e["tenant"] for e in expired) == sorted(t.id for t in tenants)


def test_cli_administers_a_cluster(redis, valkey_cluster, master_key_b64):
    """`rotator tenant/service/key/app` with REDIS_CLUSTER=1 and the URL of one node."""
    env = base_env(
        ROTATOR_REDIS_URL=valkey_cluster.nodes[2].url,
        ROTATOR_REDIS_CLUSTER="1",
        ROTATOR_MASTER_KEY=master_key_b64,
    )

    def rotator(*args: str, stdin: str = "") -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "rotator.cli", *args, "--json"],
            env=env, input=stdin, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = [rotator("tenant", "create", name) for name in ("a", "b", "c")]
    tenant = created[0]["id"]
    rotator("service", "create", tenant, "openai", "--policy", "usage")
    key = rotator("key", "add", tenant, "openai", "--label", "k", stdin="sk-cluster-0123456789")
    app = rotator("app", "create", tenant, "web")
    listed = rotator("tenant", "list")
    assert sorted(t["id"] for t in listed) == sorted(c["id"] for c in created)
    assert key["id"] == 1 and app["id"] == 2  # one sequence per tenant, on its slot


# --- resharding ------------------------------------------------------------------------------
@pytest.fixture
def resharding(valkey_cluster):
    """The shared cluster, its error counters zeroed afterwards: moving slots makes clients
    meet MOVED, which tests of routing elsewhere count (INFO errorstats)."""
    yield valkey_cluster
    for node in valkey_cluster.clients:
        node.config_resetstat()


async def migrate_atomically(cluster, slot: int, source: int, target: int) -> None:
    """CLUSTER MIGRATESLOTS (Valkey 9), then wait until every node sees the new owner."""
    cluster.clients[source].execute_command(
        "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", cluster.node_id(target)
    )
    deadline = time.monotonic() + 20
    while not all(cluster.owner(slot, seen_by=i) == target for i in range(3)):
        assert time.monotonic() < deadline, "the slot did not move"
        await asyncio.sleep(0.01)


async def test_atomic_slot_migration_is_invisible_to_deliveries(client, redis, resharding):
    """Valkey 9's CLUSTER MIGRATESLOTS moves a tenant's slot under load: no error, exact count.

    (The classic MIGRATING/IMPORTING protocol is not: see the next test.)
    """
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    moving = key_slot(keys.tag(t.id).encode())
    source = resharding.owner(moving)
    target = (source + 1) % 3
    fillers = [f"{keys.tag(t.id)}:filler:{i}" for i in range(20_000)]
    pipe = resharding.clients[source].pipeline(transaction=False)
    for name in fillers:  # so that the move takes a while: deliveries run during it
        pipe.set(name, "x" * 100)
    pipe.execute()
    statuses: Counter[int] = Counter()
    moved = asyncio.Event()
    during: list[int] = []

    async def load() -> None:
        for _ in range(20_000):  # a bound, should the migration never end
            if moved.is_set():
                return
            statuses[(await deliver(client, t.client_token)).status_code] += 1
            await asyncio.sleep(0)  # the test client answers without yielding: let migrate() run

    async def migrate() -> None:
        while sum(statuses.values()) < 10:
            await asyncio.sleep(0.001)
        before = sum(statuses.values())
        await migrate_atomically(resharding, moving, source, target)
        during.append(sum(statuses.values()) - before)
        for _ in range(20):  # and a few deliveries on the new owner
            statuses[(await deliver(client, t.client_token)).status_code] += 1
        moved.set()

    try:
        await asyncio.gather(load(), load(), load(), migrate())
        assert set(statuses) == {200}
        assert during[0] > 0, "no delivery ran while the slot moved: nothing was tested"
        print(f"\n{during[0]} deliveries while the slot moved")
        usage = await redis.hget(keys.usage(t.id, utc_day(T0_MS)), "s:openai")
        assert int(usage) == statuses[200]
    finally:
        moved.set()
        await redis.delete(*fillers)
        if resharding.owner(moving) != source:
            await migrate_atomically(resharding, moving, resharding.owner(moving), source)


async def test_classic_slot_migration_answers_503_until_it_ends(client, redis, resharding):
    """MIGRATING/IMPORTING (valkey-cli --cluster reshard of old): a slot being moved refuses
    multi-key scripts naming absent keys (next_key's app and throttle keys) with TRYAGAIN,
    so its tenants' deliveries get 503 (never a 500) until the slot's move ends."""
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    moving = key_slot(keys.tag(t.id).encode())
    source = resharding.owner(moving)
    target = (source + 1) % 3
    assert (await deliver(client, t.client_token)).status_code == 200
    resharding.begin_migration(moving, source, target)
    try:
        r = await deliver(client, t.client_token)
        assert (r.status_code, r.json()) == (503, {"error": "store unavailable"})
        resharding.move_keys(moving, source, target)
        assert (await deliver(client, t.client_token)).status_code == 503
    finally:
        resharding.finish_migration(moving, target)
    r = await deliver(client, t.client_token)
    assert (r.status_code, r.json()["meta"]["usage_today"]) == (200, 2)
    resharding.migrate_slot(moving, target, source)
