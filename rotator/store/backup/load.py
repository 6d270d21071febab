"""The restore: the whole file checked first, then each tenant written in one script.

1. Check (`check_file`, also `rotator restore --check`): every line's MAC, the record
   structure, the counts, and that the configured master keys open the file's canary and
   every sealed secret. Any failure refuses the file as a whole: nothing is written.
2. The store: its canary (if any) must open with the same keys; a store holding tenants
   is refused unless `replace` (the file's tenants are replaced, the others kept) or it
   is an unfinished restore of this very file (marked in kr:restore), which is resumed.
3. Writes, in batches of tenants: each tenant is one restore_tenant.lua call that deletes
   the tenant's current keys and writes the file's (so a crash leaves whole tenants, and
   running the restore again gives the same store), fsync-acknowledged; then the global
   registries it implies (derived.py). Keys whose expiry has passed since the backup are
   not written. The file is read a second time for this, each line checked against the
   MAC the first pass saw (a file changed in between stops the restore there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import msgspec

from rotator.crypto import DecryptError, KeyRing, blob_fingerprint, blob_key_name
from rotator.domain.clock import Clock, iso_ms
from rotator.domain.errors import NotFound, RotatorError, TenantSuspended
from rotator.store import apps, claims, keys, migrations, tenant_deletion, tenants, token_index
from rotator.store import keyring as keyring_store
from rotator.store.backup import derived, format, selection
from rotator.store.backup.format import (
    FileRefused,
    HashKey,
    KeyNotConfigured,
    KeyRecord,
    ListKey,
    SetKey,
    StreamKey,
    StringKey,
    TenantRecord,
    ZSetKey,
    raw,
)
from rotator.store.connection import Durability, Redis
from rotator.store.scripts.call import Durable
from rotator.store.scripts.records import restore_tenant
from rotator.tuning import RESTORE_BATCH_BYTES, RESTORE_BATCH_TENANTS

_MAX_STREAM_SEQ = 2**64 - 1

Progress = Callable[[int, int], None]


class RestoreRefused(RotatorError):
    """The store is not one this restore may write into (nothing was written)."""


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """A file that passed every check, and what the restore needs from it."""

    file: str
    created_at: str
    tenants: list[str]
    keys: int
    sealed_with: list[str]
    macs: list[bytes]
    """Each line's MAC (hex), for the second reading."""
    undecryptable: list[str]
    """Secrets whose key is configured but that do not open (damaged before the backup:
    restored as they were); places, never values."""
    imported_tokens: dict[str, str]
    """The file's imported tokens: hash -> owner (derived.py), but for `shared_tokens`."""
    shared_tokens: dict[str, list[str]]
    """Imported tokens two or more owners of the file hold (given to both by a restore
    before this version checked, or moved between them while the backup ran): hash ->
    owners. Restored, neither accepts it (no index entry names them)."""
    header: format.Header


class RestoreReport(msgspec.Struct, frozen=True, kw_only=True):
    file: str
    created_at: str
    tenants: int
    keys: int
    expired: int
    """Keys not written: their expiry passed since the backup (old usage counters)."""
    replaced: int
    """Tenants of the file the store held before (their keys were replaced); 0 when this
    resumed a restore (the tenants it held came from the same file)."""
    kept: int
    """Tenants of the store not in the file (left as they were)."""
    resumed: bool
    """This finished an interrupted restore of the same file."""
    undecryptable: list[str]
    shared_tokens: list[list[str]]
    """Owners ("<tenant>" or "<tenant>:<app>") of each imported token several held in the
    file: restored, none of them accepts it (Checked.shared_tokens)."""


def check_file(path: Path, ring: KeyRing) -> Checked:
    """Verify the whole file against `ring`; FileRefused / KeyNotConfigured otherwise."""
    name = str(path)
    macs: list[bytes] = []
    tenants: list[str] = []
    key_count = 0
    unconfigured: dict[str, list[str]] = {}
    undecryptable: list[str] = []
    owners: dict[str, list[str]] = {}
    header: format.Header | None = None
    with _open(path) as source:
        for mac, record in format.read_verified(source, ring, name):
            macs.append(mac)
            if isinstance(record, format.Header):
                header = record
            elif isinstance(record, TenantRecord):
                tenants.append(record.id)
                key_count += len(record.keys)
                for where, blob, aad in derived.sealed_blobs(record):
                    _try_open(ring, where, blob, aad, unconfigured, undecryptable)
                for token_hash, owner in derived.registries(record).imported_tokens:
                    owners.setdefault(token_hash, []).append(owner)
    assert header is not None
    canary = dict(header.keyring).get("canary")
    if canary is not None:
        _try_open(ring, "the key-ring canary", raw(canary), keyring_store.CANARY_AAD,
                  unconfigured, undecryptable)  # fmt: skip
    if unconfigured:
        named = "; ".join(
            f"{len(places)} sealed with master key {key} (e.g. {places[0]})"
            for key, places in unconfigured.items()
        )
        raise KeyNotConfigured(
            f"{name}: secrets the configured master keys cannot open: {named}; configured: "
            f"{', '.join(ring.fingerprints)}. A restore needs the master keys the backup's "
            "secrets are sealed with"
        )
    return Checked(
        file=name,
        created_at=header.created_at,
        tenants=tenants,
        keys=key_count,
        sealed_with=header.sealed_with,
        macs=macs,
        undecryptable=undecryptable,
        imported_tokens={h: found[0] for h, found in owners.items() if len(found) == 1},
        shared_tokens={h: sorted(found) for h, found in owners.items() if len(found) > 1},
        header=header,
    )


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except OSError as exc:
        raise FileRefused(f"{path}: {exc.strerror or exc}") from None


def _try_open(
    ring: KeyRing,
    where: str,
    blob: bytes,
    aad: bytes,
    unconfigured: dict[str, list[str]],
    undecryptable: list[str],
) -> None:
    try:
        ring.open(blob, aad)
    except DecryptError:
        fp = blob_fingerprint(blob)
        if fp is not None and fp in ring.fingerprints:
            undecryptable.append(where)
        else:
            unconfigured.setdefault(blob_key_name(blob), []).append(where)


async def restore(
    redis: Redis,
    durability: Durability,
    ring: KeyRing,
    checked: Checked,
    *,
    clock: Clock,
    replace: bool = False,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> RestoreReport:
    """Restore every tenant of a file `check_file` passed (see the module docstring), then
    bring the store to this version's data format (`say` tells the migrations' steps). One
    restore at a time: another running is Claimed, naming it (two into an empty store would
    each find it empty and merge their files)."""
    async with claims.claimed(
        redis, keys.RESTORE_CLAIM, what="restore", about=checked.file, now_ms=clock()
    ) as claim:
        return await _restore(
            redis, durability, ring, checked, claim,
            clock=clock, replace=replace, progress=progress, say=say,
        )  # fmt: skip


async def _restore(
    redis: Redis,
    durability: Durability,
    ring: KeyRing,
    checked: Checked,
    claim: claims.Claim,
    *,
    clock: Clock,
    replace: bool,
    progress: Progress | None,
    say: Callable[[str], None],
) -> RestoreReport:
    path = Path(checked.file)
    header = checked.header
    final_mac = checked.macs[-1].decode()
    await _check_store_keyring(redis, ring)
    in_store = {m.decode() for m in await redis.smembers(keys.TENANTS)}
    mark = await redis.hgetall(keys.RESTORE)
    in_file = set(checked.tenants)
    resumed = (
        bool(in_store)
        and mark.get(b"mac") == final_mac.encode()
        and b"finished_ms" not in mark
        and in_store <= in_file
    )
    if in_store and not replace and not resumed:
        ours = len(in_store & in_file)
        raise RestoreRefused(
            f"the store already holds {len(in_store)} tenants ({ours} of them in {path}); "
            "restore into an empty store, or pass --replace to replace the file's tenants "
            "and keep the others; nothing was restored"
        )
    await _check_deletions(redis, in_file)
    await _settle_imported_tokens(redis, durability, checked.imported_tokens, in_file, say)
    existing = await selection.tenant_keys(redis, data_only=False)

    pipe = redis.pipeline(transaction=False)
    pipe.hset(
        keys.RESTORE,
        mapping={"mac": final_mac, "file": str(path), "started_ms": clock(),
                 "tenants": len(checked.tenants)},
    )  # fmt: skip
    pipe.hdel(keys.RESTORE, "finished_ms")
    # the oldest format in the store once written: the file's tenants', or the kept
    # tenants' when the store itself was not migrated yet (a --replace keeps them)
    since = min(header.schema_version, await migrations.stored_version(redis))
    if since < keys.SCHEMA_VERSION:
        # until they are migrated below, the store says so (a restore cut short is
        # finished by `migrate`)
        pipe.set(keys.SCHEMA, since)
    for field, value in header.keyring:
        # a canary already there stays (it opened with these keys above)
        pipe.hsetnx(keys.KEYRING, raw(field), raw(value))
    await durability.execute(pipe)

    written = expired = 0
    batch: list[tuple[TenantRecord, list[str], list[Any]]] = []
    batch_bytes = 0
    with _open(path) as source:
        lines = format.read_verified(source, ring, str(path))
        for number, (mac, record) in enumerate(lines, 1):
            if mac != checked.macs[number - 1]:
                raise FileRefused(
                    f"{path} changed while it was restored (line {number}); the tenants "
                    "before it are restored whole: run the restore again"
                )
            if not isinstance(record, TenantRecord):
                continue
            record = derived.without_shared(record, checked.shared_tokens)
            names, args, gone = script_call(record, existing.get(record.id, set()), clock())
            expired += gone
            batch.append((record, names, args))
            batch_bytes += sum(len(a) if isinstance(a, bytes | str) else 8 for a in args)
            if len(batch) >= RESTORE_BATCH_TENANTS or batch_bytes >= RESTORE_BATCH_BYTES:
                await claim.keep()
                await _write_batch(
                    redis, durability, batch, existing, in_file, checked.shared_tokens
                )
                written += len(batch)
                batch, batch_bytes = [], 0
                if progress is not None:
                    progress(written, len(checked.tenants))
    if batch:
        await claim.keep()
        await _write_batch(redis, durability, batch, existing, in_file, checked.shared_tokens)
        written += len(batch)
        if progress is not None:
            progress(written, len(checked.tenants))

    # an entry a replaced tenant or an earlier restore left naming one of them
    await token_index.release_all(
        redis, durability, [(h, o) for h, owners in checked.shared_tokens.items() for o in owners]
    )
    deleted = await _deleted_meanwhile(redis, durability, in_file, clock)
    pipe = redis.pipeline(transaction=False)
    if header.demo_tenant is not None:
        pipe.set(keys.DEMO_TENANT, header.demo_tenant, nx=True)
    if not deleted:  # else not finished: the same restore, run again, resumes
        pipe.hset(keys.RESTORE, "finished_ms", clock())
    await durability.execute(pipe)
    await migrations.bring_up(redis, durability, say, since=since)
    if deleted:
        first = deleted[0]
        raise RestoreRefused(
            f"{len(deleted)} tenant(s) of the file were deleted while it was restored (tenant "
            f"{first.tenant} at {iso_ms(first.began_ms)}): the deletion stands, and the "
            "worker removes what the restore wrote of them. The file's other tenants are "
            "restored. To bring them back, run the same restore again once the deletion "
            "is final (a minute after it began)"
        )
    return RestoreReport(
        file=str(path),
        created_at=checked.created_at,
        tenants=written,
        keys=checked.keys - expired,
        expired=expired,
        replaced=0 if resumed else len(in_store & in_file),
        kept=len(in_store - in_file),
        resumed=resumed,
        undecryptable=checked.undecryptable,
        shared_tokens=list(checked.shared_tokens.values()),
    )


async def _deleted_meanwhile(
    redis: Redis, durability: Durability, in_file: set[str], clock: Clock
) -> list[tenant_deletion.Pending]:
    """The file's tenants whose deletion began while the restore ran (one pending before it
    refused it): their tokens are blanked again, as the deletion's first step does, so what
    the restore wrote of them stops answering now rather than when the worker removes it."""
    deleted = [d for d in await tenant_deletion.pending(redis) if d.tenant in in_file]
    for d in deleted:
        await tenant_deletion.begin(redis, durability, d.tenant, now_ms=clock())
    return deleted


async def _check_deletions(redis: Redis, in_file: set[str]) -> None:
    """A tenant of the file whose deletion is not final is refused: the worker would go on
    deleting it once restored. Race point: a deletion's final pass ends it, so a deletion
    still stepping after that (a second deleter of the same tenant) is not seen here."""
    deleting = [d for d in await tenant_deletion.pending(redis) if d.tenant in in_file]
    if deleting:
        first = deleting[0]
        raise RestoreRefused(
            f"{len(deleting)} tenant(s) of the file are being deleted (tenant {first.tenant} "
            f"since {iso_ms(first.began_ms)}). A deletion is final a minute after "
            "it began, once the worker's re-check finds nothing left (or run `rotator tenant "
            f"delete {first.tenant} --confirm {first.tenant}` then); restore after that. "
            "Nothing was restored"
        )


async def _settle_imported_tokens(
    redis: Redis,
    durability: Durability,
    imported: dict[str, str],
    in_file: set[str],
    say: Callable[[str], None],
) -> None:
    """The file's imported tokens that another owner holds now, from one read of the index:
    - held outside the file (given up, then imported there after the backup): refused, for
      restored, one token would open two tenants' keys;
    - held by another tenant of the file (it moved after the backup): taken from it before
      anything is written, for restored in a later batch than the token's owner in the
      file, it would accept the token too in between. It gets a token of ours, which its
      own restore then replaces."""
    held = await token_index.held_elsewhere(redis, list(imported.items()))
    for token_hash, holder in held.items():
        if token_index.tenant_of(holder) not in in_file:
            raise RestoreRefused(
                await _taken(redis, imported[token_hash], holder) + "; nothing was restored"
            )
    for token_hash, holder in held.items():
        tenant, _, app_id = holder.partition(":")
        with contextlib.suppress(NotFound):  # gone meanwhile: it holds nothing
            if app_id:
                await apps.issue_app_token(redis, durability, tenant, int(app_id))
            else:
                await tenants.issue_client_token(redis, durability, tenant)
        say(
            f"note: {token_index.describe(holder)} held the imported token the file gives "
            f"{token_index.describe(imported[token_hash])}: it has a new token now, and its "
            "restore writes the one the file has"
        )


async def _taken(redis: Redis, owner: str, holder: str) -> str:
    tenant, _, app_id = holder.partition(":")
    if app_id:
        reissue = f"rotator app token {tenant} {app_id}"
    else:
        reissue = f"rotator tenant client-token {tenant}"
    try:
        await tenants.check_writable(redis, tenant)
    except TenantSuspended:  # its tokens are not reissued: resumed for the moment it takes
        reissue = f"rotator tenant resume {tenant}`, `{reissue}`, `rotator tenant suspend {tenant}"
    return (
        f"the imported token of {token_index.describe(owner)} is held by "
        f"{token_index.describe(holder)} now; restored, it would open both tenants' keys. "
        f"Give {token_index.describe(holder)} a new token first (`{reissue}`)"
    )


async def _check_store_keyring(redis: Redis, ring: KeyRing) -> None:
    """The store's own canary (if any) must open too: its data and the file's are then
    sealed with keys of one ring, and the canary stays true for both."""
    record = await keyring_store.read(redis)
    if record.canary is None:
        return
    try:
        ring.open(record.canary, keyring_store.CANARY_AAD)
    except DecryptError:
        raise KeyNotConfigured(
            f"the store already holds data sealed with master key "
            f"{blob_key_name(record.canary)}, which is not configured (configured: "
            f"{', '.join(ring.fingerprints)}); nothing was restored"
        ) from None


def script_call(
    record: TenantRecord, existing: set[str], now_ms: int
) -> tuple[list[str], list[Any], int]:
    """(KEYS, ARGV, keys left out as expired) of restore_tenant.lua for one tenant."""
    names = sorted(existing | {k.name for k in record.keys})
    index = {name: i for i, name in enumerate(names, 1)}
    args: list[Any] = []
    expired = 0
    for key in record.keys:
        if key.expires_at_ms is not None and key.expires_at_ms <= now_ms:
            expired += 1
            continue
        items = _items(key)
        kind = type(key).__struct_config__.tag
        expires = "" if key.expires_at_ms is None else key.expires_at_ms
        args += [index[key.name], kind, expires, len(items), *items]
    return [selection.full_name(record.id, n) for n in names], args, expired


def _items(key: KeyRecord) -> list[Any]:
    if isinstance(key, StringKey):
        return [raw(key.value)]
    if isinstance(key, HashKey):
        return [raw(x) for pair in key.value for x in pair]
    if isinstance(key, SetKey | ListKey):
        return [raw(m) for m in key.value]
    if isinstance(key, ZSetKey):
        return [x for member, score in key.value for x in (score, raw(member))]
    assert isinstance(key, StreamKey)
    items: list[Any] = [key.last_id, key.max_deleted_id, key.entries_added, len(key.entries)]
    for entry_id, fields in key.entries:
        items += [entry_id, 2 * len(fields), *(raw(x) for pair in fields for x in pair)]
    items.append(len(key.groups))
    for group in key.groups:
        start = group.last_delivered_id
        if group.pending and group.first_pending_id is not None:
            # handed to a consumer, not acknowledged: delivered again (at-least-once; the
            # event ids are the same, so receivers deduplicate)
            start = id_before(group.first_pending_id)
        items += [raw(group.name), start]
    return items


def id_before(entry_id: str) -> str:
    """The greatest stream id below `entry_id`: a group created there reads it next."""
    ms, _, seq = entry_id.partition("-")
    if int(seq or 0) > 0:
        return f"{ms}-{int(seq) - 1}"
    if int(ms) > 0:
        return f"{int(ms) - 1}-{_MAX_STREAM_SEQ}"
    return "0-0"


async def _write_batch(
    redis: Redis,
    durability: Durability,
    batch: list[tuple[TenantRecord, list[str], list[Any]]],
    existing: dict[str, set[str]],
    in_file: set[str],
    shared: Collection[str],
) -> None:
    """The tenants' imported tokens claimed in the index (before the hashes that accept
    them, as an import does: token_index.py); the tenants' scripts, acknowledged on disk;
    then their registry memberships (global keys, other slots: after the data they point
    to, so none points at a tenant not yet written)."""
    implied = {record.id: derived.registries(record) for record, _, _ in batch}
    wanted = [
        (token_hash, owner)
        for registries in implied.values()
        for token_hash, owner in registries.imported_tokens
        if token_hash not in shared
    ]
    taken = await token_index.take(redis, durability, wanted, replacing=in_file)
    if taken.refused:  # imported there since the check above, or being imported
        token_hash, holder = next(iter(taken.refused.items()))
        owner = dict(wanted)[token_hash]
        raise RestoreRefused(
            await _taken(redis, owner, holder) + f"; the tenants of the file before "
            f"{batch[0][0].id} are restored, the others not yet: run the restore again then"
        )
    await Durable(redis, durability).run_many(
        [restore_tenant(names, args) for _, names, args in batch]
    )
    await token_index.confirm(redis, durability, taken.claims)
    pipe = redis.pipeline(transaction=False)
    for record, _, _ in batch:
        tenant = record.id
        time_services, webhook = implied[tenant].time_services, implied[tenant].webhook
        old_slugs = {
            name[len(selection.SERVICE_PREFIX) :]
            for name in existing.get(tenant, set())
            if name.startswith(selection.SERVICE_PREFIX)
        }
        for slug in sorted(old_slugs - set(time_services)):
            pipe.srem(keys.TIME_SERVICES, keys.time_service_member(tenant, slug))
        for slug in time_services:
            pipe.sadd(keys.TIME_SERVICES, keys.time_service_member(tenant, slug))
        if webhook:
            pipe.sadd(keys.WEBHOOK_TENANTS, tenant)
        else:
            pipe.srem(keys.WEBHOOK_TENANTS, tenant)
        pipe.sadd(keys.TENANTS, tenant)
    await durability.execute(pipe)
