"""The key-ring canary: the store remembers which master keys sealed its data.

A wrong or lost master key used to start happily and fail every delivery with 500.
Now every process that opens or seals secrets (`serve`, `worker`, `run`, `key add`,
`rewrap`) first calls `unlock`, which opens a known plaintext sealed into the store
(`kr:keyring`, see store/keys.py) and refuses when no configured key can.

- Empty store: the canary is sealed under the ring's first key at first start.
- Upgrade (sealed data, no canary yet): a few stored blobs are opened instead; the
  canary is then sealed by the key that opened them, the key the data needs.
- `rotator rewrap` re-seals the canary under the new first key, last, once every
  blob is moved (a crash before that leaves it under a key the ring still holds).

Besides the canary, `fp:<fingerprint>` fields list every key that may have sealed data
since the last complete rewrap: a sealing process records its first key when it starts,
and again with every sealed write (`note_sealing`, `sealed`), whose value then changes.
A rewrap forgets a key only if its value did not change while it worked, so a replica
still sealing with an older key (its ring not yet updated) keeps that key listed.
A configured ring missing one of them still starts (the canary opens), with a note.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from rotator.crypto import (
    DecryptError,
    KeyRing,
    aad_for_key,
    aad_for_webhook_secret,
    blob_fingerprint,
    blob_key_name,
)
from rotator.store import keys
from rotator.store.connection import Durability, Redis
from rotator.store.scripts.call import Durable, run
from rotator.store.scripts.records import field_cas
from rotator.tuning import KEYRING_SAMPLE_BLOBS

CANARY_PLAINTEXT = b"keyrotator key-ring canary"
CANARY_AAD = b"keyring\x1fcanary"
"""Its own associated data: no stored secret can pass for the canary, nor the reverse."""

_KEY_FIELD = re.compile(rb"^c:(\d+)$")
_FP_PREFIX = "fp:"


class KeyRingMismatch(Exception):
    """No configured master key opens the store's data. Carries fingerprints, never keys."""

    def __init__(self, sealed_with: tuple[str, ...], configured: tuple[str, ...]) -> None:
        self.sealed_with = sealed_with
        self.configured = configured
        super().__init__(
            f"no configured key opens the data in the store (sealed with "
            f"{', '.join(sealed_with) or 'an unknown key'}; configured: {', '.join(configured)})"
        )


class Record(msgspec.Struct, frozen=True, kw_only=True):
    canary: bytes | None
    fingerprints: tuple[str, ...]
    """Keys the data may be sealed with (hex), oldest first."""
    marks: dict[str, bytes] = msgspec.field(default_factory=dict)
    """Each fingerprint's stored value: it changes with every write sealed by that key."""


class Unlocked(msgspec.Struct, frozen=True, kw_only=True):
    created: bool
    """The canary was written now (empty store, or the first start after an upgrade)."""
    unconfigured: tuple[str, ...]
    """Keys data may still be sealed with that the ring lacks (worth a note, not a refusal)."""


async def read(redis: Redis) -> Record:
    fields = await redis.hgetall(keys.KEYRING)
    marks = {
        f.decode()[len(_FP_PREFIX) :]: v for f, v in fields.items()
        if f.startswith(_FP_PREFIX.encode())
    }  # fmt: skip
    fps = sorted((int(v), fp) for fp, v in marks.items())
    return Record(
        canary=fields.get(b"canary"), fingerprints=tuple(fp for _, fp in fps), marks=marks
    )


def note_sealing(ring: KeyRing, now_ms: int | None = None) -> Callable[[Any], None]:
    """Commands to queue with a write sealed by `ring`'s first key (a `Durable` `before`):
    that key may be needed. HSETNX keeps the time it was first recorded; HINCRBY makes the
    value change with every sealed write, which a rewrap in progress checks before it
    forgets the key (`reseal`). Two commands on one key of their own: not on the delivery
    path, and cheap on a management write (one more reply in its pipeline)."""
    field = _FP_PREFIX + ring.primary_fingerprint
    first_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms

    def queue(pipe: Any) -> None:
        pipe.hsetnx(keys.KEYRING, field, first_ms)
        pipe.hincrby(keys.KEYRING, field, 1)

    return queue


async def sealed(
    redis: Redis, durability: Durability, ring: KeyRing, now_ms: int | None = None
) -> None:
    """After a write sealed by `ring`'s first key is acknowledged: record the key again.

    Race point: a rewrap that read the marks before this write, and scanned the written
    hash before it too, may forget the key after `note_sealing` ran with the write; this
    record comes after the write, so it either changes the mark before the rewrap compares
    it, or brings the field back after the rewrap removed it. Only a crash between the
    write and this line, inside that window, loses the record."""
    pipe = redis.pipeline(transaction=False)
    note_sealing(ring, now_ms)(pipe)
    await durability.execute(pipe)


async def sealed_blobs(redis: Redis, limit: int) -> AsyncIterator[tuple[bytes, bytes, str]]:
    """Up to `limit` stored blobs as (blob, aad, fingerprint or v1 id). Stops at the first
    ones found; a store with tenants but no secret is scanned to its end (rare: only
    when there is no canary)."""
    found = 0
    async for member in redis.sscan_iter(keys.TENANTS, count=100):
        tenant = member.decode()
        wh = await redis.hget(keys.tenant(tenant), "wh_secret")
        if wh:
            yield wh, aad_for_webhook_secret(tenant), blob_key_name(wh)
            found += 1
            if found >= limit:
                return
        for slug in sorted(m.decode() for m in await redis.smembers(keys.services(tenant))):
            for field, blob in (await redis.hgetall(keys.service(tenant, slug))).items():
                match = _KEY_FIELD.match(field)
                if match and blob:
                    aad = aad_for_key(tenant, slug, int(match.group(1)))
                    yield blob, aad, blob_key_name(blob)
                    found += 1
                    if found >= limit:
                        return


async def holds_sealed_data(redis: Redis) -> bool:
    """True when a lost master key would lose data: a canary, or any sealed blob."""
    if await redis.hexists(keys.KEYRING, "canary"):
        return True
    async for _ in sealed_blobs(redis, 1):
        return True
    return False


async def sealed_with(redis: Redis) -> tuple[str, ...]:
    """What the store's data names as its keys (for a message about a lost key)."""
    record = await read(redis)
    named = list(record.fingerprints)
    if record.canary is not None:
        fp = blob_fingerprint(record.canary)
        if fp and fp not in named:
            named.insert(0, fp)
    if not named:
        async for _, _, name in sealed_blobs(redis, KEYRING_SAMPLE_BLOBS):
            if name not in named:
                named.append(name)
    return tuple(named)


async def unlock(
    redis: Redis, durability: Durability, ring: KeyRing, *, seals: bool, now_ms: int
) -> Unlocked:
    """Check that `ring` opens the store's data; raises KeyRingMismatch when it does not.

    Writes the canary when there is none. `seals`: this process will seal new secrets
    (the API, `key add`, `rewrap`): its first key is recorded as one the data may need.
    """
    record = await read(redis)
    created = False
    if record.canary is None:
        opener = await _open_a_stored_blob(redis, ring)
        pipe = redis.pipeline(transaction=False)
        # two processes starting at once on a store without a canary: HSETNX keeps the
        # first canary; the loser checks that one below, like any later start
        pipe.hsetnx(keys.KEYRING, "canary", ring.seal(CANARY_PLAINTEXT, CANARY_AAD, by=opener))
        pipe.hsetnx(keys.KEYRING, _FP_PREFIX + opener, now_ms)
        created = bool((await durability.execute(pipe))[0])
        record = await read(redis)
    assert record.canary is not None
    try:
        ring.open(record.canary, CANARY_AAD)
    except DecryptError:
        canary_fp = blob_fingerprint(record.canary)
        named = [canary_fp] if canary_fp else []
        named += [fp for fp in record.fingerprints if fp not in named]
        raise KeyRingMismatch(tuple(named), ring.fingerprints) from None
    if seals and ring.primary_fingerprint not in record.fingerprints:
        pipe = redis.pipeline(transaction=False)
        pipe.hsetnx(keys.KEYRING, _FP_PREFIX + ring.primary_fingerprint, now_ms)
        await durability.execute(pipe)
    unconfigured = tuple(fp for fp in record.fingerprints if fp not in ring.fingerprints)
    return Unlocked(created=created, unconfigured=unconfigured)


async def _open_a_stored_blob(redis: Redis, ring: KeyRing) -> str:
    """The fingerprint of the ring key that opens the store's data (the first key for an
    empty store); KeyRingMismatch when sealed blobs exist and none of them opens."""
    named: list[str] = []
    async for blob, aad, name in sealed_blobs(redis, KEYRING_SAMPLE_BLOBS):
        opener = ring.opener_of(blob, aad)
        if opener is not None:
            return opener
        if name not in named:
            named.append(name)
    if named:
        raise KeyRingMismatch(tuple(named), ring.fingerprints)
    return ring.primary_fingerprint


async def reseal(
    redis: Redis,
    durability: Durability,
    ring: KeyRing,
    *,
    seen: Record,
    complete: bool,
    now_ms: int,
) -> bool:
    """After a rewrap: the canary under the first key; when every blob moved (`complete`),
    the keys `seen` listed (read before the rewrap began) are forgotten, each only if its
    mark is still what was read: a key that sealed a write meanwhile may have sealed one
    the rewrap had already passed, and stays listed. Returns True when the canary moved.

    No canary (a store no process has unlocked yet): nothing to do, `unlock` writes one.
    A canary the ring cannot open is left alone (the store's data is not this ring's).
    """
    record = await read(redis)
    if record.canary is None:
        return False

    def first_key(pipe: Any) -> None:  # idempotent: safe ahead of the compare-and-set
        pipe.hsetnx(keys.KEYRING, _FP_PREFIX + ring.primary_fingerprint, now_ms)

    moved = False
    if not ring.needs_rewrap(record.canary):
        pipe = redis.pipeline(transaction=False)
        first_key(pipe)
        await durability.execute(pipe)
    else:
        try:
            ring.open(record.canary, CANARY_AAD)
        except DecryptError:
            return False
        fresh = ring.seal(CANARY_PLAINTEXT, CANARY_AAD)
        # compare-and-set, like every rewrapped field: of two concurrent rewraps one writes
        moved = await run(
            Durable(redis, durability, before=first_key),
            field_cas(keys.KEYRING, "canary", record.canary, fresh),
        )
    stale = [(fp, mark) for fp, mark in seen.marks.items() if fp != ring.primary_fingerprint]
    if complete and stale:
        # compare-and-delete: a mark changed since `seen` is a key still sealing
        await Durable(redis, durability).run_many(
            [field_cas(keys.KEYRING, _FP_PREFIX + fp, mark, None) for fp, mark in stale]
        )
    return moved
