"""`rotator rewrap`: re-encrypt every stored secret under the ring's first master key.

Covers provider keys (`c:N` of every service hash) and webhook secrets
(`wh_secret` of every tenant hash), then the key-ring canary (store/keyring.py), last:
until every blob has moved, it stays under a key the data still needs. Version-1
blobs (ring id inside) always move, to version 2 (key fingerprint inside). Safe while
the service runs: each field is
replaced by a compare-and-set script only if it still holds the blob that was
read, so a key deleted meanwhile is never resurrected and nothing written
meanwhile is overwritten. Blobs already under the first key are left as they are,
so a second run (or a resumed one after a crash) does no work twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import msgspec

from rotator.crypto import DecryptError, KeyRing, aad_for_key, aad_for_webhook_secret
from rotator.store import keyring as keyring_store
from rotator.store import keys
from rotator.store.connection import Durability, Redis
from rotator.store.scripts.call import Durable
from rotator.store.scripts.records import field_cas

_KEY_FIELD = re.compile(rb"c:(\d+)")  # fullmatch: `$` also matches before a final newline


class RewrapReport(msgspec.Struct, kw_only=True):
    rewrapped: int = 0
    """Blobs now sealed under the first master key."""
    current: int = 0
    """Blobs that already were."""
    vanished: int = 0
    """Deleted or replaced while we worked: nothing to do."""
    failed: list[str] = msgspec.field(default_factory=list)
    """Where a blob could not be opened (unknown master key, tampering): no secret, a place."""
    canary_resealed: bool = False
    """The key-ring canary moved to the first key (it is not counted above)."""


async def _rewrap_hash(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    hash_key: str,
    blobs: list[tuple[str, bytes, bytes, str]],
    report: RewrapReport,
) -> None:
    """blobs: (field, blob, aad, description). One pipeline of CAS scripts + one WAITAOF."""
    calls = []
    for field, blob, aad, where in blobs:
        try:
            if not keyring.needs_rewrap(blob):
                report.current += 1
                continue
            fresh = keyring.seal(keyring.open(blob, aad), aad)
        except (DecryptError, IndexError, UnicodeDecodeError):  # a mangled header fails too
            report.failed.append(where)
            continue
        calls.append(field_cas(hash_key, field, blob, fresh))
    if not calls:
        return
    sealing = keyring_store.note_sealing(keyring)
    for replaced in await Durable(redis, durability, before=sealing).run_many(calls):
        if replaced:
            report.rewrapped += 1
        else:
            report.vanished += 1


async def rewrap_all(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    *,
    progress: Callable[[str], None] | None = None,
    now_ms: int | None = None,
) -> RewrapReport:
    """Rewrap every tenant's secrets; `progress` gets one line per tenant (ids, counts only)."""
    report = RewrapReport()
    # read before any blob: a key whose mark changes from here on sealed something the scan
    # below may have passed, and is not forgotten at the end (keyring_store.reseal)
    seen = await keyring_store.read(redis)
    tenants = sorted(m.decode() for m in await redis.smembers(keys.TENANTS))
    for tenant in tenants:
        before = report.rewrapped
        tenant_key = keys.tenant(tenant)
        wh_blob = await redis.hget(tenant_key, "wh_secret")
        if wh_blob:
            where = f"tenant {tenant} webhook secret"
            blobs = [("wh_secret", wh_blob, aad_for_webhook_secret(tenant), where)]
            await _rewrap_hash(redis, durability, keyring, tenant_key, blobs, report)
        for slug in sorted(m.decode() for m in await redis.smembers(keys.services(tenant))):
            svc_key = keys.service(tenant, slug)
            blobs = []
            for field, blob in (await redis.hgetall(svc_key)).items():
                match = _KEY_FIELD.fullmatch(field)
                if match:
                    key_id = int(match.group(1))
                    where = f"tenant {tenant} service {slug} key {key_id}"
                    aad = aad_for_key(tenant, slug, key_id)
                    blobs.append((field.decode(), blob, aad, where))
            await _rewrap_hash(redis, durability, keyring, svc_key, blobs, report)
        if progress is not None:
            progress(f"tenant {tenant}: {report.rewrapped - before} rewrapped")
    report.canary_resealed = await keyring_store.reseal(
        redis, durability, keyring,
        seen=seen,
        complete=not report.failed,
        now_ms=time.time_ns() // 1_000_000 if now_ms is None else now_ms,
    )  # fmt: skip
    if progress is not None and report.canary_resealed:
        progress(f"key-ring canary: now sealed under key {keyring.primary_fingerprint}")
    return report
