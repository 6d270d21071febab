"""The workers on a Redis Cluster as the data store (queue on a plain Redis): the sweep, the
pump and the delivery job touch one slot per command or script."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rotator.cli.webhook_listen import Receiver
from rotator.domain.clock import FakeClock
from rotator.settings import SettingsError
from rotator.store import keys, services, tenants, webhooks
from rotator.store.cluster import Cluster
from rotator.store.connection import Durability
from tests.conftest import T0_MS
from tests.integration.webhook_support import FAST, verify_signature, worker
from workers.pump import EventPump
from workers.settings import worker_settings
from workers.sweep import sweep_time_services


def test_cluster_without_queue_url_is_refused(settings):
    clustered = dataclasses.replace(settings, redis_cluster=True, queue_url=None)
    with pytest.raises(SettingsError, match="ROTATOR_QUEUE_URL"):
        worker_settings(clustered)


async def test_sweep_pump_and_delivery_on_a_cluster(valkey_cluster, valkey, settings, redis):
    valkey_cluster.flush()
    clustered = dataclasses.replace(
        settings, redis_url=valkey_cluster.url, redis_cluster=True, queue_url=valkey.url
    )
    r = Cluster.from_url(valkey_cluster.url)
    d = Durability()
    receiver = await Receiver().start()
    try:
        tenant = await tenants.create_tenant(r, d, name="acme", demo=False, now_ms=T0_MS)
        update = await tenants.update_tenant(
            r, d, settings.keyring, tenant.id,
            webhook_url=receiver.url, webhook_events=["key.expired", "service.no_active_keys"],
            webhook_allow_private=True,
        )  # fmt: skip
        secret = update.webhook_secret
        await services.create_service(
            r, d, tenant.id, slug="s", policy="time", key_ttl_minutes=3, now_ms=T0_MS
        )
        key = await services.add_key(
            r, d, settings.keyring, tenant.id, "s", label="a", secret="sk-1", now_ms=T0_MS
        )
        await r.hset(keys.service(tenant.id, "s"), f"t:{key.id}", T0_MS)  # first delivered

        ctx = {"settings": clustered, "config": FAST, "data": r, "clock": FakeClock(T0_MS)}
        ctx["clock"].advance(minutes=3)
        assert await sweep_time_services(ctx) == 1

        assert await EventPump(r, redis, FAST).pump_once() == 2  # queue: the plain Valkey
        async with worker(clustered) as w:
            await w.async_run()

        kinds = set()
        for request in receiver.received:
            assert verify_signature(secret, request.headers, request.body)
            kinds.add(json.loads(request.body)["type"])
        assert kinds == {"key.expired", "service.no_active_keys"}
        logged, _ = await webhooks.page(r, tenant.id, limit=10)
        assert {a.outcome for a in logged} == {"delivered"}
        assert len(logged) == 2
    finally:
        await receiver.close()
        await r.aclose()
