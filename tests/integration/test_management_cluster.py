"""The management store on a Redis Cluster: scripts stay in one slot, registries are global."""

from __future__ import annotations

import base64
import os

from rotator.crypto import KeyRing, aad_for_key
from rotator.store import apps, keys, rewrap, services, tenants
from rotator.store.cluster import Cluster
from rotator.store.connection import Durability
from tests.conftest import T0_MS


def b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_full_management_cycle_on_a_cluster(valkey_cluster):
    valkey_cluster.flush()
    r = Cluster.from_url(valkey_cluster.url)
    d = Durability()
    old = b64()
    ring = KeyRing.parse(f"old:{old}")
    try:
        t = await tenants.create_tenant(r, d, name="acme", demo=False, now_ms=T0_MS)
        tid = t.id
        await services.create_service(
            r, d, tid, slug="s", policy="time", key_ttl_minutes=3, now_ms=T0_MS
        )
        k1 = await services.add_key(r, d, ring, tid, "s", label="a", secret="sk-1", now_ms=T0_MS)
        k2 = await services.add_key(r, d, ring, tid, "s", label="b", secret="sk-2", now_ms=T0_MS)
        await services.update_key(
            r, d, tid, "s", k1.id, active=False, now_ms=T0_MS, events_maxlen=1000
        )
        svc = await services.update_service(r, d, tid, "s", policy="usage")
        assert (svc.policy, svc.keys, svc.active_keys) == ("usage", 2, 1)
        app = await apps.add_app(r, d, tid, name="web", now_ms=T0_MS)
        update = await tenants.update_tenant(
            r, d, ring, tid, webhook_url="https://e.com/h", webhook_allow_private=True
        )
        assert update.webhook_secret

        assert [x.id for x in await tenants.list_tenants(r)] == [tid]
        assert await r.sismember(keys.WEBHOOK_TENANTS, tid)
        assert not await r.sismember(keys.TIME_SERVICES, f"{tid}:s")
        assert [a.id for a in await apps.list_apps(r, tid)] == [app.id]

        both = KeyRing.parse(f"new:{b64()},old:{old}")
        report = await rewrap.rewrap_all(r, d, both)
        assert (report.rewrapped, report.failed) == (3, [])
        blob = await r.hget(keys.service(tid, "s"), f"c:{k2.id}")
        assert both.key_id_of(blob) == "new"
        assert both.open(blob, aad_for_key(tid, "s", k2.id)) == b"sk-2"

        await services.remove_key(r, d, tid, "s", k1.id, now_ms=T0_MS, events_maxlen=1000)
        assert [k.id for k in await services.list_keys(r, tid, "s")] == [k2.id]
        await services.delete_service(r, d, tid, "s", today=0, retention_days=1)
        await apps.delete_app(r, d, tid, app.id)
        assert await services.list_services(r, tid) == []
        assert await apps.list_apps(r, tid) == []
    finally:
        await r.aclose()
