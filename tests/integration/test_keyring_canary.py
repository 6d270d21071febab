"""The key-ring canary (store/keyring.py) and renamed rings, on one node and on a cluster."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rotator.api.app import create_app
from rotator.crypto import KeyRing, aad_for_key, fingerprint
from rotator.store import keyring, keys, rewrap, services, tenants
from rotator.store.connection import Durability
from tests.asgi import app_client
from tests.conftest import T0_MS
from tests.integration.management import SECRET, deliver, new_key, new_service, new_tenant
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def fp(b64: str) -> str:
    return fingerprint(base64.b64decode(b64)).hex()


def seal_v1(kid: str, b64: str, plaintext: bytes, aad: bytes) -> bytes:
    """A blob as e1a71c5 sealed it: version 1, the ring id of its key inside."""
    nonce = os.urandom(12)
    sealed = AESGCM(base64.b64decode(b64)).encrypt(nonce, plaintext, aad)
    return bytes((1, len(kid))) + kid.encode() + nonce + sealed


async def unlock(redis, ring: KeyRing, *, seals: bool = True) -> keyring.Unlocked:
    return await keyring.unlock(redis, Durability(), ring, seals=seals, now_ms=T0_MS)


async def test_an_empty_store_gets_a_canary_under_the_first_key(redis):
    first, second = b64key(), b64key()
    ring = KeyRing.parse(f"a:{first},b:{second}")
    assert (await unlock(redis, ring)).created
    record = await keyring.read(redis)
    assert record.fingerprints == (fp(first),)
    assert KeyRing.parse(first).open(record.canary, keyring.CANARY_AAD)
    again = await unlock(redis, ring)
    assert not again.created and again.unconfigured == ()


async def test_a_wrong_ring_is_refused_naming_fingerprints_only(redis):
    right, wrong = b64key(), b64key()
    await unlock(redis, KeyRing.parse(right))
    with pytest.raises(keyring.KeyRingMismatch) as refused:
        await unlock(redis, KeyRing.parse(f"x:{wrong}"))
    assert refused.value.sealed_with == (fp(right),)
    assert refused.value.configured == (fp(wrong),)
    assert right not in str(refused.value) and wrong not in str(refused.value)
    assert (await keyring.read(redis)).fingerprints == (fp(right),)  # nothing recorded


async def test_an_upgraded_store_is_checked_on_its_data_then_gets_a_canary(redis):
    """Data sealed before the canary existed (v1 blobs): a stored blob decides."""
    old, new, wrong = b64key(), b64key(), b64key()
    t = await seed.tenant(redis)
    await redis.sadd(keys.TENANTS, t.tenant)
    await seed.service(redis, t, "openai", policy="usage")
    short = fp(old)[:8]  # the id the bare key had
    await redis.hset(
        keys.service(t.tenant, "openai"),
        "c:1", seal_v1(short, old, b"sk-1", aad_for_key(t.tenant, "openai", 1)),
    )  # fmt: skip
    with pytest.raises(keyring.KeyRingMismatch) as refused:
        await unlock(redis, KeyRing.parse(wrong))
    assert refused.value.sealed_with == (f"id {short}",)
    assert await redis.exists(keys.KEYRING) == 0  # refused: nothing written

    ring = KeyRing.parse(f"new:{new},old:{old}")  # renamed, and a new first key
    assert (await unlock(redis, ring)).created
    record = await keyring.read(redis)
    # sealed by the key that opened the data (what the data needs), not by the first key
    assert ring.key_id_of(record.canary) == "old"
    assert set(record.fingerprints) == {fp(old), fp(new)}
    with pytest.raises(keyring.KeyRingMismatch):  # the new key alone cannot open old data
        await unlock(redis, KeyRing.parse(new))
    note = await unlock(redis, KeyRing.parse(f"renamed:{old}"))
    assert note.unconfigured == (fp(new),)  # started, but new may have sealed something


async def test_starting_at_once_leaves_one_canary(redis):
    key = b64key()
    results = await asyncio.gather(*(unlock(redis, KeyRing.parse(key)) for _ in range(8)))
    assert sum(r.created for r in results) == 1


async def test_a_reader_does_not_record_its_key(redis):
    old, new = b64key(), b64key()
    await unlock(redis, KeyRing.parse(old))
    await unlock(redis, KeyRing.parse(f"{new},{old}"), seals=False)
    assert (await keyring.read(redis)).fingerprints == (fp(old),)


async def test_rewrap_reseals_the_canary_last_and_forgets_old_keys(redis):
    old, new = b64key(), b64key()
    t = await seed.tenant(redis)
    await redis.sadd(keys.TENANTS, t.tenant)
    await seed.service(redis, t, "openai", policy="usage")
    await seed.key(redis, KeyRing.parse(old), t, "openai", "sk-1")
    await unlock(redis, KeyRing.parse(old))
    both = KeyRing.parse(f"new:{new},old:{old}")
    await unlock(redis, both)
    assert set((await keyring.read(redis)).fingerprints) == {fp(old), fp(new)}

    lines: list[str] = []
    report = await rewrap.rewrap_all(redis, Durability(), both, progress=lines.append)
    assert report.rewrapped == 1 and report.canary_resealed
    assert lines[-1] == f"key-ring canary: now sealed under key {fp(new)}"
    record = await keyring.read(redis)
    assert record.fingerprints == (fp(new),)
    assert KeyRing.parse(new).open(record.canary, keyring.CANARY_AAD)
    await unlock(redis, KeyRing.parse(new))  # the old key can go now
    with pytest.raises(keyring.KeyRingMismatch):
        await unlock(redis, KeyRing.parse(old))


async def _tenant_with_a_key(redis, ring: KeyRing) -> str:
    d = Durability()
    tid = (await tenants.create_tenant(redis, d, name="acme", demo=False, now_ms=T0_MS)).id
    await services.create_service(redis, d, tid, slug="openai", policy="usage", now_ms=T0_MS)
    await services.add_key(redis, d, ring, tid, "openai", label="k", secret=SECRET, now_ms=T0_MS)
    return tid


async def test_rewrap_does_not_forget_a_key_a_running_replica_seals_with(redis):
    """Replica A runs with `new:NEW`, replica B restarts with `newer:NEWER,new:NEW`, rewrap
    completes: A still seals with NEW, so a ring of NEWER alone starts with a note."""
    new, newer = b64key(), b64key()
    replica_a = KeyRing.parse(f"new:{new}")
    replica_b = KeyRing.parse(f"newer:{newer},new:{new}")
    await unlock(redis, replica_a)
    tid = await _tenant_with_a_key(redis, replica_a)
    await unlock(redis, replica_b)
    report = await rewrap.rewrap_all(redis, Durability(), replica_b, now_ms=T0_MS)
    assert (report.rewrapped, report.failed) == (1, [])
    assert (await keyring.read(redis)).fingerprints == (fp(newer),)  # nothing sealed NEW since

    d = Durability()
    await services.create_service(redis, d, tid, slug="late", policy="usage", now_ms=T0_MS)
    await services.add_key(redis, d, replica_a, tid, "late", label="k", secret=SECRET, now_ms=T0_MS)
    await tenants.update_tenant(redis, d, replica_a, tid, webhook_secret="whsec_" + "a" * 32)
    assert set((await keyring.read(redis)).fingerprints) == {fp(new), fp(newer)}
    note = await unlock(redis, KeyRing.parse(f"newer:{newer}"))
    assert note.unconfigured == (fp(new),)


async def test_a_key_that_seals_while_rewrap_runs_stays_listed(redis, monkeypatch):
    """A write sealed by NEW after the rewrap passed its hash: the rewrap's compare-and-delete
    sees NEW's mark changed and keeps it."""
    new, newer = b64key(), b64key()
    replica_a = KeyRing.parse(f"new:{new}")
    replica_b = KeyRing.parse(f"newer:{newer},new:{new}")
    await unlock(redis, replica_a)
    tid = await _tenant_with_a_key(redis, replica_a)
    reseal = keyring.reseal

    async def replica_a_seals_first(*args, **kwargs):  # every hash is scanned by now
        await services.add_key(
            redis, Durability(), replica_a, tid, "openai", label="late", secret=SECRET,
            now_ms=T0_MS,
        )  # fmt: skip
        return await reseal(*args, **kwargs)

    monkeypatch.setattr(keyring, "reseal", replica_a_seals_first)
    report = await rewrap.rewrap_all(redis, Durability(), replica_b, now_ms=T0_MS)
    assert (report.rewrapped, report.failed, report.canary_resealed) == (1, [], True)
    assert set((await keyring.read(redis)).fingerprints) == {fp(new), fp(newer)}
    monkeypatch.setattr(keyring, "reseal", reseal)
    again = await rewrap.rewrap_all(redis, Durability(), replica_b, now_ms=T0_MS)
    assert again.rewrapped == 1  # the late key; nothing sealed NEW during this one
    assert (await keyring.read(redis)).fingerprints == (fp(newer),)


async def test_renamed_ring_still_delivers(settings, redis, clock, master_key_b64):
    """A key added under the bare ROTATOR_MASTER_KEY, and one sealed as e1a71c5 did (v1,
    the bare key's fingerprint as its id): both delivered once the ring is
    `new:<NEW>,old:<the same key>`."""
    async with app_client(create_app(settings, clock=clock)) as client:
        t = await new_tenant(client)
        await new_service(client, t, policy="manual")
        await new_key(client, t)
    short = fp(master_key_b64)[:8]
    assert settings.keyring.primary_id == short
    legacy = seal_v1(short, master_key_b64, b"sk-legacy-0123456789", aad_for_key(t.id, "openai", 1))
    renamed = dataclasses.replace(
        settings, master_key=KeyRing.parse(f"new:{b64key()},old:{master_key_b64}")
    )
    async with app_client(create_app(renamed, clock=clock)) as client:
        r = await deliver(client, t.client_token)
        assert r.status_code == 200, r.text
        assert r.json()["key"] == SECRET
        await redis.hset(keys.service(t.id, "openai"), "c:1", legacy)
        r = await deliver(client, t.client_token)
        assert r.status_code == 200, r.text
        assert r.json()["key"] == "sk-legacy-0123456789"
