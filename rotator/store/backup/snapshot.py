"""One tenant read in one step: the tenant as it was at one instant, never half-changed.

The key names come first (the SCAN's, plus the names every tenant may have), then one
script (backup_read.lua) reads them all on the tenant's slot. Keys created between the
two would be missed, so the snapshot checks itself: every service in its `services`
set and every app in its `apps` set must have been read (their hashes are created in
the same script as their membership, so a member without its hash means "created after
the listing"); if one was not, the names are extended and the tenant is read again.
Usage hashes a day's first delivery creates are covered by reading yesterday's, today's
and tomorrow's names in any case (selection.usage_names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rotator.domain.clock import iso_ms
from rotator.domain.errors import RotatorError
from rotator.store.backup import selection
from rotator.store.backup.format import (
    HashKey,
    Item,
    KeyRecord,
    ListKey,
    SetKey,
    StreamGroup,
    StreamKey,
    StringKey,
    TenantRecord,
    ZSetKey,
    item,
    raw,
)
from rotator.store.connection import Redis
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.records import backup_read
from rotator.tuning import BACKUP_READS_PER_TENANT


class BackupFailed(RotatorError):
    """A backup cannot be made as it should be (the file is not written)."""


class BackupExists(BackupFailed):
    """The backup's file exists, and overwriting it was not asked for (`rotator backup`
    names its flag for that, --force)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists; remove it or choose another name")
        self.path = path


async def read_tenant(
    redis: Redis, tenant: str, listed: set[str], *, today: int
) -> tuple[TenantRecord | None, int]:
    """(the tenant's keys as of one instant, how many times it was read again); None when
    the tenant no longer exists (deleted since it was listed). `listed`: its names found
    by the SCAN (after its tag, data only); `today`: the UTC day number."""
    names = set(listed) | set(selection.fixed_names(tenant))
    names |= set(selection.usage_names(tenant, today))
    for reads in range(BACKUP_READS_PER_TENANT):
        ordered = sorted(names)
        reply = await run(
            Plain(redis), backup_read([selection.full_name(tenant, n) for n in ordered])
        )
        now_ms = int(reply[0])
        records = [key_record(tenant, entry, now_ms) for entry in reply[1:]]
        by_name = {r.name: r for r in records}
        if selection.TENANT not in by_name:
            return None, reads
        unread = _members_unread(tenant, by_name, names)
        if not unread:
            return TenantRecord(
                id=tenant, read_at=iso_ms(now_ms), read_at_ms=now_ms, keys=records
            ), reads
        # a service or app was created after the listing: read the tenant again, with it
        names |= unread
    raise BackupFailed(
        f"tenant {tenant} kept changing while it was read ({BACKUP_READS_PER_TENANT} reads); "
        "run the backup again"
    )


def _members_unread(tenant: str, by_name: dict[str, KeyRecord], names: set[str]) -> set[str]:
    """Names of the hashes the snapshot's services and apps sets promise but were not read."""
    promised: set[str] = set()
    for set_name, name_of in (
        (selection.SERVICES, selection.service_name),
        (selection.APPS, selection.app_name),
    ):
        record = by_name.get(set_name)
        if isinstance(record, SetKey):
            promised |= {name_of(tenant, raw(m).decode()) for m in record.value}
    return promised - names


def _pairs(flat: list[bytes]) -> list[tuple[Item, Item]]:
    pairs = sorted(zip(flat[::2], flat[1::2], strict=True))
    return [(item(f), item(v)) for f, v in pairs]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def key_record(tenant: str, entry: list[Any], now_ms: int) -> KeyRecord:
    """One key of backup_read.lua's reply as the file holds it (its expiry as an instant)."""
    key, kind, pttl_ms, value = _text(entry[0]), _text(entry[1]), int(entry[2]), entry[3]
    split = selection.split_name(key)
    assert split is not None and split[0] == tenant, key
    common: dict[str, Any] = {
        "name": split[1],
        "expires_at_ms": now_ms + pttl_ms if pttl_ms >= 0 else None,
    }
    if kind == "string":
        return StringKey(**common, value=item(value))
    if kind == "hash":
        return HashKey(**common, value=_pairs(value))
    if kind == "set":
        return SetKey(**common, value=[item(m) for m in sorted(value)])
    if kind == "zset":
        pairs = zip(value[::2], value[1::2], strict=True)
        return ZSetKey(**common, value=[(item(m), _text(s)) for m, s in pairs])
    if kind == "list":
        return ListKey(**common, value=[item(v) for v in value])
    if kind == "stream":
        return _stream(common, value)
    raise BackupFailed(
        f"tenant {tenant}: key {split[1]!r} is a {kind}, which a backup cannot hold; "
        "nothing was written"
    )


def _flat_map(flat: list[Any]) -> dict[str, Any]:
    return {_text(k): v for k, v in zip(flat[::2], flat[1::2], strict=True)}


def _stream(common: dict[str, Any], value: list[Any]) -> StreamKey:
    entries, info_flat, groups = value
    info = _flat_map(info_flat)
    read_groups = []
    for group_flat, pending in groups:
        group = _flat_map(group_flat)
        first_pending = pending[1] if int(pending[0]) else None
        read_groups.append(
            StreamGroup(
                name=item(group["name"]),
                last_delivered_id=_text(group["last-delivered-id"]),
                pending=int(pending[0]),
                first_pending_id=None if first_pending is None else _text(first_pending),
            )
        )
    return StreamKey(
        **common,
        entries=[(_text(entry_id), _pairs_in_order(fields)) for entry_id, fields in entries],
        last_id=_text(info["last-generated-id"]),
        # Redis < 7 has neither: the defaults a stream without deletions would show
        max_deleted_id=_text(info.get("max-deleted-entry-id", b"0-0")),
        entries_added=int(info.get("entries-added", len(entries))),
        groups=read_groups,
    )


def _pairs_in_order(flat: list[bytes]) -> list[tuple[Item, Item]]:
    """A stream entry's fields as recorded (order is part of an entry)."""
    return [(item(f), item(v)) for f, v in zip(flat[::2], flat[1::2], strict=True)]
