"""Can this process serve deliveries now? The store's side of GET /readyz.

Each check names what is wrong in words an operator acts on; none writes data (loading
the delivery script into the store's script cache is not a write of data, and it makes
the first delivery after a store restart as fast as the others).
"""

from __future__ import annotations

import msgspec
from redis.exceptions import RedisClusterException, RedisError

from rotator.crypto import DecryptError, KeyRing
from rotator.store import keys
from rotator.store.connection import Redis, is_unavailable
from rotator.store.keyring import CANARY_AAD
from rotator.store.migrations import SchemaUnreadable, parse_version
from rotator.store.scripts.delivery import NEXT_KEY

OK = "ok"


class Checks(msgspec.Struct, frozen=True, kw_only=True):
    """Each check's result: "ok", or what is wrong."""

    store: str
    scripts: str
    master_key: str
    schema: str


UNREACHABLE = Checks(
    store="unreachable", scripts="not checked", master_key="not checked", schema="not checked"
)


async def check(redis: Redis, ring: KeyRing) -> Checks:
    """The four checks; a store that does not answer fails them all at once."""
    try:
        await redis.ping()
        loaded = await redis.script_load(NEXT_KEY.source)
        canary = await redis.hget(keys.KEYRING, "canary")
        version = await redis.get(keys.SCHEMA)
    except (RedisError, RedisClusterException, OSError) as exc:
        if is_unavailable(exc):  # a cluster with no node reachable included
            return UNREACHABLE
        # e.g. a store that refuses scripts: named, not a 500
        return Checks(
            store=f"answered with an error ({type(exc).__name__})",
            scripts="not checked",
            master_key="not checked",
            schema="not checked",
        )
    scripts = OK if _sha(loaded) == NEXT_KEY.sha else "the store did not load next_key.lua"
    if canary is None:
        # `serve` writes it at start: gone, the store was emptied or replaced under this
        # process, whose store watch writes it again where sound (api/store_watch.py)
        master_key = f"no key-ring canary in the store ({keys.KEYRING}): emptied or replaced?"
    else:
        try:
            ring.open(canary, CANARY_AAD)
            master_key = OK
        except DecryptError:
            master_key = "does not open the store's key-ring canary (kr:keyring)"
    # absent: like the canary, `serve` records it at start; an emptied store gets it again
    # from the store watch, a store of tenants without it waits for `rotator migrate`
    try:
        stored = None if version is None else parse_version(version)
    except SchemaUnreadable:
        schema = f"{keys.SCHEMA} holds no data format version"
    else:
        if stored is None:
            schema = (
                f"no data format recorded ({keys.SCHEMA}): emptied or replaced? "
                "(`rotator migrate --check`)"
            )
        elif stored == keys.SCHEMA_VERSION:
            schema = OK
        else:
            schema = (
                f"store format {stored}, this version needs {keys.SCHEMA_VERSION}: "
                "run `rotator migrate`"
            )
    return Checks(store=OK, scripts=scripts, master_key=master_key, schema=schema)


def _sha(loaded: object) -> str:
    """SCRIPT LOAD's reply: the sha (bytes or str; a cluster client may answer per node)."""
    if isinstance(loaded, dict | list):
        values = list(loaded.values()) if isinstance(loaded, dict) else loaded
        return _sha(values[0]) if values and all(v == values[0] for v in values) else ""
    return loaded.decode() if isinstance(loaded, bytes) else str(loaded)


def ready(checks: Checks) -> bool:
    return all(value == OK for value in msgspec.structs.astuple(checks))
