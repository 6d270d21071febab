"""Data-format versions: the store records the format it holds (kr:schema), and upgrades run
once, at start (`rotator migrate`, which `serve` and `run` call before they serve), so no
script carries a branch for data an earlier version stored.

Each migration is a small named step that brings the store to one version: idempotent (what
it finds done it skips) and resumable (interrupted, it is run again from the start and
finishes), and written with the same management writes the API makes, so it is safe while
an earlier version of the service still serves (a rolling upgrade: the earlier version reads
both formats). The version is recorded only once every step up to it has finished.

A store newer than the code (a rollback past a migration) is refused: the code would
misread it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from rotator.domain.errors import RotatorError
from rotator.domain.masking import mask
from rotator.store import apps, keys, tenants
from rotator.store.common import check_allowlist
from rotator.store.connection import Durability, Redis, as_str
from rotator.store.scripts.call import Durable
from rotator.store.scripts.records import field_cas

Progress = Callable[[str], None]


class FormatRefused(RotatorError):
    """The store's data format is one this code cannot work on: serve, migrate and the
    worker refuse to start (exit 2) rather than misread the data."""


class StoreTooNew(FormatRefused):
    """The store holds a data format this code does not know (it was written by a newer
    version): serving it would misread it."""

    def __init__(self, stored: int) -> None:
        super().__init__(
            f"the store holds data format {stored}, newer than this version's "
            f"{keys.SCHEMA_VERSION}: run the newer rotator (or restore a backup made for this one)"
        )
        self.stored = stored


class Migration(NamedTuple):
    version: int
    """The data format the store is in once this step has run."""
    name: str
    what: str
    pending: Callable[[Redis], Awaitable[int]]
    """How many items the step would still change (0: nothing to do); writes nothing."""
    apply: Callable[[Redis, Durability, Progress], Awaitable[int]]
    """Run the step; how many items it changed."""


async def _tenant_ids(redis: Redis) -> list[str]:
    return sorted(as_str(m) or "" for m in await redis.smembers(keys.TENANTS))


async def _services_without_copies(redis: Redis, tenant: str) -> list[str]:
    """The services of `tenant` whose hash lacks a copy of a tenant field ('@client' ...)."""
    slugs = sorted(as_str(m) or "" for m in await redis.smembers(keys.services(tenant)))
    pipe = redis.pipeline(transaction=False)
    for slug in slugs:
        pipe.hmget(keys.service(tenant, slug), list(keys.COPIES))
    rows = await pipe.execute() if slugs else []
    return [slug for slug, row in zip(slugs, rows, strict=True) if None in row]


async def _copies_pending(redis: Redis) -> int:
    return sum([len(await _services_without_copies(redis, t)) for t in await _tenant_ids(redis)])


async def _give_services_copies(redis: Redis, durability: Durability, progress: Progress) -> int:
    """tenant_update.lua with no field to write copies the tenant's fields into every one of
    its services, atomically: the write any tenant change makes."""
    changed = 0
    ids = await _tenant_ids(redis)
    for n, tenant in enumerate(ids, 1):
        missing = await _services_without_copies(redis, tenant)
        if missing:
            await tenants.write_fields(redis, durability, tenant, {})
            changed += len(missing)
            progress(f"tenant {tenant}: copies written into {len(missing)} service(s)")
        if n % 1000 == 0:
            progress(f"{n} of {len(ids)} tenants checked")
    return changed


class _Allowlists(NamedTuple):
    tenant: str | None
    """The tenant's allowlist packed anew, when what is stored differs (else None)."""
    apps: list[int]
    """The apps whose stored packing differs from their CIDRs' packing today."""


def _repacked(packed: bytes | None, source: bytes | None) -> str | None:
    """The packing of `source` (the CIDRs as saved, JSON), when `packed` is not it."""
    fresh = check_allowlist("ip_allowlist", json.loads(as_str(source) or "[]"))[0]
    return None if fresh == (as_str(packed) or "") else fresh


async def _stale_allowlists(redis: Redis, tenant: str) -> _Allowlists:
    ids = sorted(int(m) for m in await redis.smembers(keys.apps(tenant)))
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.tenant(tenant), ["allow", "allow_src"])
    for app_id in ids:
        pipe.hmget(keys.app(tenant, app_id), ["allow", "allow_src"])
    (own, *rows) = await pipe.execute()
    stale = [i for i, row in zip(ids, rows, strict=True) if _repacked(*row) is not None]
    return _Allowlists(_repacked(*own), stale)


async def _allowlists_pending(redis: Redis) -> int:
    found = [await _stale_allowlists(redis, t) for t in await _tenant_ids(redis)]
    return sum((f.tenant is not None) + len(f.apps) for f in found)


async def _repack_allowlists(redis: Redis, durability: Durability, progress: Progress) -> int:
    """The tenant's allowlist through tenant_update.lua (which copies it into every service),
    an app's through update_app with its saved CIDRs: the writes an API change makes."""
    changed = 0
    ids = await _tenant_ids(redis)
    for n, tenant in enumerate(ids, 1):
        stale = await _stale_allowlists(redis, tenant)
        if stale.tenant is not None:
            await tenants.write_fields(redis, durability, tenant, {"allow": stale.tenant})
        for app_id in stale.apps:
            app = await apps.get_app(redis, tenant, app_id)
            await apps.update_app(redis, durability, tenant, app_id, ip_allowlist=app.ip_allowlist)
        if stale.tenant is not None or stale.apps:
            changed += (stale.tenant is not None) + len(stale.apps)
            progress(f"tenant {tenant}: allowlists packed anew ({len(stale.apps)} app(s))")
        if n % 1000 == 0:
            progress(f"{n} of {len(ids)} tenants checked")
    return changed


async def _stale_masks(redis: Redis, tenant: str) -> list[tuple[str, str, bytes, str]]:
    """(service hash, field, stored masked form, this version's) of each key of `tenant`
    whose masked form shows more than this version's masking would. The new form is the
    mask of the old one: it reveals a known prefix only where the old form showed it, and
    the same length and last 4 characters, so no key is decrypted."""
    slugs = sorted(as_str(m) or "" for m in await redis.smembers(keys.services(tenant)))
    pipe = redis.pipeline(transaction=False)
    for slug in slugs:
        pipe.hget(keys.service(tenant, slug), "ids")
    id_lists = await pipe.execute() if slugs else []
    fields = [
        (keys.service(tenant, slug), f"k:{key_id}")
        for slug, ids in zip(slugs, id_lists, strict=True)
        for key_id in (as_str(ids) or "").split(",") if key_id
    ]  # fmt: skip
    pipe = redis.pipeline(transaction=False)
    for hash_key, field in fields:
        pipe.hget(hash_key, field)
    stored = await pipe.execute() if fields else []
    return [
        (hash_key, field, old, fresh)
        for (hash_key, field), old in zip(fields, stored, strict=True)
        if old is not None and (fresh := mask(old.decode())) != old.decode()
    ]


async def _masks_pending(redis: Redis) -> int:
    return sum([len(await _stale_masks(redis, t)) for t in await _tenant_ids(redis)])


async def _remask(redis: Redis, durability: Durability, progress: Progress) -> int:
    """Each stale masked form replaced only if it still holds what was read (field_cas): a
    key deleted or added meanwhile is left as the API wrote it."""
    changed = 0
    ids = await _tenant_ids(redis)
    for n, tenant in enumerate(ids, 1):
        stale = await _stale_masks(redis, tenant)
        if stale:
            calls = [field_cas(h, f, old, fresh.encode()) for h, f, old, fresh in stale]
            changed += sum(await Durable(redis, durability).run_many(calls))
            progress(f"tenant {tenant}: {len(stale)} masked form(s) shortened")
        if n % 1000 == 0:
            progress(f"{n} of {len(ids)} tenants checked")
    return changed


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=2,
        name="service_copies",
        what="every service holds copies of its tenant's client, demo, allow and events "
        "fields, so the delivery script reads one hash (it no longer falls back to the "
        "tenant hash)",
        pending=_copies_pending,
        apply=_give_services_copies,
    ),
    Migration(
        version=3,
        name="allowlist_packing",
        what="an IPv6 allowlist entry that holds ::ffff:0:0/96 (such as ::/0) is packed as "
        "the ranges around it, so it no longer admits IPv4 clients; allowlists saved "
        "before are packed again from their CIDRs",
        pending=_allowlists_pending,
        apply=_repack_allowlists,
    ),
    Migration(
        version=4,
        name="masked_forms",
        what="a key's masked form shows only a provider's known prefix (sk-, sk-proj-, "
        "gsk_, ...) and its last 4 characters; forms stored before, which could show up to "
        "14 of a key's first characters, are masked again",
        pending=_masks_pending,
        apply=_remask,
    ),
)
assert MIGRATIONS[-1].version == keys.SCHEMA_VERSION


class Status(NamedTuple):
    stored: int
    """The store's data format (1 when it records none but holds tenants)."""
    steps: list[tuple[Migration, int]]
    """The migrations still to run, with how many items each would change."""


class SchemaUnreadable(FormatRefused):
    """kr:schema holds something no version wrote: which format the data is in is unknown."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(
            f"{keys.SCHEMA} holds {raw[:40]!r}, not a data format version; set it to the "
            "format the data is in (`rotator migrate --check` after deleting it infers 1 "
            "for a store with tenants)"
        )


def parse_version(raw: bytes) -> int:
    """kr:schema's value; SchemaUnreadable when it is not a positive whole number."""
    if not (raw.isdigit() and 0 < len(raw) <= 9 and int(raw) > 0):  # bytes: ASCII digits
        raise SchemaUnreadable(raw)
    return int(raw)


async def stored_version(redis: Redis) -> int:
    """The store's data format: kr:schema; absent = 1 (stored before versions were recorded)
    for a store with tenants, the current format for an empty one."""
    raw = await redis.get(keys.SCHEMA)
    if raw is not None:
        return parse_version(raw)
    return 1 if await redis.scard(keys.TENANTS) else keys.SCHEMA_VERSION


async def record_if_empty(redis: Redis, durability: Durability) -> bool:
    """An empty store is in this version's format by definition: record it (kr:schema) before
    its first tenant is written, so that data is never read as format 1. A store with tenants
    and no kr:schema is left alone: written before versions were recorded (or restored from
    such a store), its format is for `rotator migrate` to find. True when it wrote."""
    if await redis.exists(keys.SCHEMA):
        return False
    # race point: a tenant written between this read and the SET (another process creating
    # the store's first one) is written by this version's code too, in the current format
    if await redis.scard(keys.TENANTS):
        return False
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.SCHEMA, keys.SCHEMA_VERSION, nx=True)
    return bool((await durability.execute(pipe))[0])


async def status(redis: Redis) -> Status:
    """What `migrate` would do; writes nothing. Raises StoreTooNew."""
    stored = await stored_version(redis)
    if stored > keys.SCHEMA_VERSION:
        raise StoreTooNew(stored)
    steps = [(m, await m.pending(redis)) for m in MIGRATIONS if m.version > stored]
    return Status(stored, steps)


async def migrate(redis: Redis, durability: Durability, progress: Progress) -> Status:
    """Run every migration the store needs, in order, then record the version; returns the
    status found before. Raises StoreTooNew."""
    found = await status(redis)
    await bring_up(redis, durability, progress, since=found.stored)
    return found


async def bring_up(redis: Redis, durability: Durability, progress: Progress, *, since: int) -> None:
    """Run every migration past format `since`, then record the current format. A restore
    calls it with its file's format: the tenants it wrote are in that format, whatever the
    store recorded before (the steps skip what is done, so the other tenants cost a read)."""
    for migration in MIGRATIONS:
        if migration.version <= since:
            continue
        progress(f"migration {migration.version} {migration.name}: {migration.what}")
        changed = await migration.apply(redis, durability, progress)
        progress(f"migration {migration.version} {migration.name}: done, {changed} changed")
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.SCHEMA, keys.SCHEMA_VERSION)
    await durability.execute(pipe)
