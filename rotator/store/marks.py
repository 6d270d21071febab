"""The two marks `rotator serve` leaves in a store at start: the key-ring canary
(kr:keyring, store/keyring.py) and the data format (kr:schema, store/migrations.py).

A store emptied under a running API (FLUSHALL, Valkey restarted without its data) loses
both: the API's store watch (rotator/api/store_watch.py) reads them, and writes them again
where that is sound, as `serve` would at its next start; /readyz reports them missing.
"""

from __future__ import annotations

import msgspec

from rotator.crypto import KeyRing
from rotator.store import keyring, keys, migrations
from rotator.store.connection import Durability, Redis


class Marks(msgspec.Struct, frozen=True, kw_only=True):
    canary: bool
    schema: bool

    def missing(self) -> list[str]:
        """The missing marks by their keys' names (for a log line)."""
        return [
            *([] if self.canary else [f"the key-ring canary ({keys.KEYRING})"]),
            *([] if self.schema else [f"the data format ({keys.SCHEMA})"]),
        ]


async def read(redis: Redis) -> Marks:
    pipe = redis.pipeline(transaction=False)  # two slots on a cluster: not a transaction
    pipe.hexists(keys.KEYRING, "canary")
    pipe.exists(keys.SCHEMA)
    canary, schema = await pipe.execute()
    return Marks(canary=bool(canary), schema=bool(schema))


async def write_again(
    redis: Redis, durability: Durability, ring: KeyRing, *, now_ms: int
) -> list[str]:
    """Write the missing marks again as `serve` does at start; what could not be, and why.

    The canary by `keyring.unlock` (an empty store: under the ring's first key; sealed data
    written since: by the key that opens it, or a refusal); kr:schema only for a store with
    no tenant (migrations.record_if_empty): tenants without it are data of unknown format,
    maybe restored from an earlier version, and stamping them current would skip their
    migrations."""
    problems = []
    try:
        await keyring.unlock(redis, durability, ring, seals=True, now_ms=now_ms)
    except keyring.KeyRingMismatch as exc:
        problems.append(f"master key: {exc}")
    if not await migrations.record_if_empty(redis, durability) and not await redis.exists(
        keys.SCHEMA
    ):
        problems.append(
            f"{keys.SCHEMA}: the store holds tenants but records no data format; "
            "`rotator migrate --check` says what it takes them for"
        )
    return problems
