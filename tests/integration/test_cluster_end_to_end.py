"""Cluster mode end to end: REDIS_CLUSTER=1, the data on three primaries, the queue elsewhere.

Workers: the API records events in the tenants' streams on the cluster, the event
pump reads them there and enqueues on the queue server, the delivery job loads the
tenant's webhook from the cluster and posts it; the expiry sweep scripts run on each
tenant's slot. Tenants are spread until they sit on at least two cluster nodes.
The CLI administers the cluster given any one node's URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from rotator.store import keys
from tests.integration.management import Tenant, deliver, new_key, new_service, new_tenant
from tests.integration.webhook_support import FAST, verify_signature, worker
from workers.pump import EventPump
from workers.receiver import Receiver
from workers.settings import queue_url
from workers.sweep import sweep_time_services

pytestmark = pytest.mark.backends("cluster")

TTL_MIN = 5
SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.close()


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
        json.loads(r.body)
        for r in receiver.received
        if json.loads(r.body)["type"] == "key.expired"
    ]
    assert sorted(e["tenant"] for e in expired) == sorted(t.id for t in tenants)


def test_cli_administers_a_cluster(redis, valkey_cluster, master_key_b64):
    """`rotator tenant/service/key/app` with REDIS_CLUSTER=1 and the URL of one node."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
        "ROTATOR_REDIS_URL": valkey_cluster.nodes[2].url,
        "ROTATOR_REDIS_CLUSTER": "1",
        "ROTATOR_MASTER_KEY": master_key_b64,
    }

    def rotator(*args: str, stdin: str = "") -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "rotator.cli", *args, "--json"],
            env=env, input=stdin, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = [rotator("tenant", "create", name) for name in ("a", "b", "c")]
    tenant = created[0]["tenant"]
    rotator("service", "create", tenant, "openai", "--policy", "usage")
    key = rotator("key", "add", tenant, "openai", "--label", "k", stdin="sk-cluster-0123456789")
    app = rotator("app", "create", tenant, "web")
    listed = rotator("tenant", "list")
    assert sorted(t["tenant"] for t in listed) == sorted(c["tenant"] for c in created)
    assert key["key_id"] == 1 and app["app_id"] == 2  # one sequence per tenant, on its slot
