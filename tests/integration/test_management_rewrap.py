"""`rotator rewrap`'s store side: every ciphertext moves to the ring's first key, safely."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import os

import pytest
from litestar.testing import AsyncTestClient

from rotator.api.app import create_app
from rotator.crypto import KeyRing, aad_for_key, aad_for_webhook_secret
from rotator.store import keys, rewrap, services, tenants
from rotator.store.connection import Durability
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.records import field_cas
from tests.conftest import T0_MS

pytestmark = pytest.mark.backends("single", "cluster")

OLD, NEW = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()


NAMES = itertools.count()


async def populate(redis, ring: KeyRing) -> tuple[str, dict[int, str]]:
    d = Durability()
    name = f"acme {next(NAMES)}"  # unique: a test may populate twice
    created = await tenants.create_tenant(redis, d, name=name, demo=False, now_ms=T0_MS)
    tid = created.id
    update = await tenants.update_tenant(
        redis, d, ring, tid, webhook_url="https://e.com/h", webhook_allow_private=True
    )
    assert update.webhook_secret
    secrets = {}
    for slug in ("openai", "stripe"):
        await services.create_service(redis, d, tid, slug=slug, policy="usage", now_ms=T0_MS)
        for i in range(3):
            secret = f"sk-{slug}-{i}-{os.urandom(8).hex()}"
            k = await services.add_key(
                redis, d, ring, tid, slug, label=f"k{i}", secret=secret, now_ms=T0_MS
            )
            secrets[k.id] = (slug, secret)
    return tid, secrets


async def test_rewrap_round_trip(redis, settings, clock):
    old_ring = KeyRing.parse(f"old:{OLD}")
    tid, secrets = await populate(redis, old_ring)
    webhook_secret = await tenants.open_webhook_secret(redis, old_ring, tid)

    both = KeyRing.parse(f"new:{NEW},old:{OLD}")
    lines: list[str] = []
    report = await rewrap.rewrap_all(redis, Durability(), both, progress=lines.append)
    assert (report.rewrapped, report.current, report.vanished, report.failed) == (7, 0, 0, [])
    assert lines == [f"tenant {tid}: 7 rewrapped"]

    new_only = KeyRing.parse(f"new:{NEW}")
    for key_id, (slug, secret) in secrets.items():
        blob = await redis.hget(keys.service(tid, slug), f"c:{key_id}")
        assert new_only.key_id_of(blob) == "new"
        assert new_only.open(blob, aad_for_key(tid, slug, key_id)).decode() == secret
    assert await tenants.open_webhook_secret(redis, new_only, tid) == webhook_secret

    again = await rewrap.rewrap_all(redis, Durability(), both)
    assert (again.rewrapped, again.current) == (0, 7)

    # the service now runs without the old key at all
    app = create_app(dataclasses.replace(settings, master_key=new_only), clock=clock)
    async with AsyncTestClient(app=app) as c:
        token = (await tenants.issue_client_token(redis, Durability(), tid)).client_token
        r = await c.get("/v1/next", params={"service": "stripe", "token": token})
        assert r.status_code == 200
        assert r.json()["key"] in {s for slug, s in secrets.values() if slug == "stripe"}


async def test_unopenable_blobs_are_reported_and_skipped(redis):
    old_ring = KeyRing.parse(f"old:{OLD}")
    tid, secrets = await populate(redis, old_ring)
    lost_id = next(iter(secrets))
    slug = secrets[lost_id][0]
    stranger = KeyRing.parse(f"gone:{base64.b64encode(os.urandom(32)).decode()}")
    foreign = stranger.seal(b"sk-unknown", aad_for_key(tid, slug, lost_id))
    await redis.hset(keys.service(tid, slug), f"c:{lost_id}", foreign)

    report = await rewrap.rewrap_all(redis, Durability(), KeyRing.parse(f"new:{NEW},old:{OLD}"))
    assert report.failed == [f"tenant {tid} service {slug} key {lost_id}"]
    assert report.rewrapped == 6
    assert await redis.hget(keys.service(tid, slug), f"c:{lost_id}") == foreign  # untouched


async def test_compare_and_set_leaves_a_changed_field_alone(redis):
    """The race rewrap guards against: the key was deleted (or rewritten) after the read."""
    h = "{t:x}:svc:s"

    async def cas(field: str, expected: bytes, new: bytes) -> bool:
        return await run(Plain(redis), field_cas(h, field, expected, new))

    await redis.hset(h, "c:1", b"current")
    assert not await cas("c:1", b"what-we-read", b"new")
    assert await redis.hget(h, "c:1") == b"current"
    assert not await cas("c:2", b"what-we-read", b"new")
    assert not await redis.hexists(h, "c:2")  # a deleted key is not resurrected
    assert await cas("c:1", b"current", b"new")
    assert await redis.hget(h, "c:1") == b"new"


async def test_webhook_secret_aad_is_bound_to_its_tenant(redis):
    ring = KeyRing.parse(f"old:{OLD}")
    tid, _ = await populate(redis, ring)
    other, _ = await populate(redis, ring)
    blob = await redis.hget(keys.tenant(tid), "wh_secret")
    assert ring.open(blob, aad_for_webhook_secret(tid))
    await redis.hset(keys.tenant(other), "wh_secret", blob)  # copied to another tenant
    report = await rewrap.rewrap_all(redis, Durability(), KeyRing.parse(f"new:{NEW},old:{OLD}"))
    assert report.failed == [f"tenant {other} webhook secret"]
