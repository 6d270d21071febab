"""Wrappers of the scripts that know Redis types, not our records: the webhook delivery log,
a compare-and-set of one field (rewrap, the key ring's canary and keys), a claim's upkeep
(claims.py), and the backup's read and restore of a tenant's keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_LOG_DELIVERY = load("log_delivery")
_FIELD_CAS = load("field_cas")
_CLAIM = load("claim")
_BACKUP_READ = load("backup_read")
_RESTORE_TENANT = load("restore_tenant")


def log_delivery(tenant: str, entry_json: bytes, *, keep: int) -> Call[int | None]:
    """Prepend a webhook delivery attempt to the tenant's log: its seq (None: no such tenant)."""
    return Call(
        _LOG_DELIVERY,
        (keys.deliveries(tenant), keys.tenant(tenant)),
        (entry_json, keep),
        decode.optional_integer,
    )


def field_cas(hash_key: str, field: str, expected: bytes, new: bytes | None) -> Call[bool]:
    """Replace `field` (remove it: `new` None) if it still holds `expected`: False when it
    changed or vanished."""
    args = (field, expected) if new is None else (field, expected, new)
    return Call(_FIELD_CAS, (hash_key,), args, decode.flag)


def claim(name: str, value: str, *, keep_ms: int, take_as: str | None = None) -> Call[bool]:
    """Keep the claim `name` `keep_ms` longer (0: give it up) if it still holds `value`:
    False when it lapsed or another caller holds it. With `take_as`, hold it with that value
    instead (`value` is an ended holder's: a take-over)."""
    args = (value, str(keep_ms)) if take_as is None else (value, str(keep_ms), take_as)
    return Call(_CLAIM, (name,), args, decode.flag)


def backup_read(names: Sequence[str]) -> Call[list[Any]]:
    """The given keys of one tenant at one instant: [now_ms, [name, type, pttl_ms, value]...]
    (rotator/store/backup/snapshot.py decodes the entries)."""
    return Call(_BACKUP_READ, tuple(names), (), decode.raw)


def restore_tenant(names: Sequence[str], args: Sequence[Any]) -> Call[int]:
    """Replace one tenant's keys (`names`, all of them) by a backup's: how many were written.
    `args` is laid out by rotator/store/backup/load.py (see restore_tenant.lua's header)."""
    return Call(_RESTORE_TENANT, tuple(names), tuple(args), decode.integer)
