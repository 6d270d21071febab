"""Wrappers of the service and provider-key scripts (management writes and the sweep).

Each returns the `Call` of its script (rotator/store/scripts/call.py): the store module sends
it through `Durable` (an fsync-acknowledged write) or `Plain`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import msgspec

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_SERVICE_CREATE = load("service_create")
_SERVICE_UPDATE = load("service_update")
_SERVICE_DELETE = load("service_delete")
_KEY_ADD = load("key_add")
_KEY_UPDATE = load("key_update")
_KEY_REMOVE = load("key_remove")
_KEY_MOVE = load("key_move")
_ROTATE = load("rotate")
_SWEEP = load("sweep_service")


def service_create(
    tenant: str,
    slug: str,
    *,
    policy: str,
    max_: str,
    ttl_ms: str,
    created_ms: int,
    warn: str,
    rpm: str = "",
    health: Sequence[str] = (),
) -> Call[bool]:
    """Create the service unless the slug is taken: True created, False it exists. `health`:
    field/value pairs of the health settings set (the others keep their defaults)."""
    return Call(
        _SERVICE_CREATE,
        (keys.service(tenant, slug), keys.services(tenant), keys.tenant(tenant)),
        (slug, policy, max_, ttl_ms, created_ms, warn, rpm, *health),
        decode.flag,
    )


def service_update(tenant: str, slug: str, read_policy: str, pairs: Sequence[str]) -> Call[int]:
    """Write `pairs` (policy, max, ttl_ms, warn, health settings): 1 updated, 0 no such
    service, -1 the policy changed since the caller read `read_policy`."""
    return Call(
        _SERVICE_UPDATE, (keys.service(tenant, slug),), (read_policy, *pairs), decode.integer
    )


def service_delete(tenant: str, slug: str, days: Sequence[int]) -> Call[bool]:
    """Drop the service, its keys and its counters in the usage hashes of `days`: False when
    there was no such service."""
    return Call(
        _SERVICE_DELETE,
        (
            keys.service(tenant, slug),
            keys.services(tenant),
            keys.service_window(tenant, slug),
            *(keys.usage(tenant, day) for day in days),
        ),
        (slug,),
        decode.flag,
    )


class NewKeyFields(msgspec.Struct, frozen=True, kw_only=True):
    """One key as key_add.lua stores it (sealed, masked, limit as the scripts read it)."""

    id: int
    label: str
    sealed: bytes
    max_: str
    masked: str
    weight: int = 1
    rpm: str = ""
    """Max requests per minute as the scripts read it ('' = none)."""


def key_add(
    tenant: str,
    slug: str,
    created_ms: int,
    new: Sequence[NewKeyFields],
    *,
    compared: str,
    endings: Collection[str],
) -> Call[int]:
    """Append keys to the rotation, all or none: how many were added (0: no such service;
    -1: the keys whose masked form ends as one of `endings` are no longer `compared`, those
    the secrets were checked against)."""
    args: list[Any] = [created_ms, compared, len(endings), *endings]
    for k in new:
        args += [k.id, k.label, k.sealed, k.max_, k.masked, k.weight, k.rpm]
    return Call(_KEY_ADD, (keys.service(tenant, slug),), args, decode.integer)


def key_update(
    tenant: str, slug: str, key_id: int, pairs: Sequence[str], *, now_ms: int, events_maxlen: int
) -> Call[bool]:
    """Write a key's label/active/max fields (`pairs`): False when there is no such key."""
    return Call(
        _KEY_UPDATE,
        (keys.service(tenant, slug), keys.events(tenant)),
        (key_id, now_ms, slug, events_maxlen, *pairs),
        decode.flag,
    )


def key_remove(
    tenant: str, slug: str, key_id: int, *, now_ms: int, events_maxlen: int
) -> Call[bool]:
    """Delete a key and take it out of rotation: False when there is no such key."""
    return Call(
        _KEY_REMOVE,
        (keys.service(tenant, slug), keys.events(tenant)),
        (key_id, now_ms, slug, events_maxlen),
        decode.flag,
    )


def key_move(
    tenant: str, slug: str, key_id: int, to: str, *, now_ms: int, events_maxlen: int
) -> Call[int]:
    """Move a key to the 'front' or 'end': 1 moved, 0 no such key, -1 no such service."""
    return Call(
        _KEY_MOVE,
        (keys.service(tenant, slug), keys.events(tenant)),
        (key_id, to, now_ms, slug, events_maxlen),
        decode.integer,
    )


class RotateReply(msgspec.Struct, frozen=True):
    """rotate.lua: status 'ok' (from -> to), 'service' (none), 'policy' (not manual: which),
    'nokeys'."""

    status: str
    from_key_id: int = 0
    to_key_id: int = 0
    policy: str = ""


def _rotate_reply(reply: list[Any]) -> RotateReply:
    status = decode.text(reply[0])
    if status == "ok":
        return RotateReply(status, int(reply[1]), int(reply[2]))
    if status == "policy":
        return RotateReply(status, policy=decode.text(reply[1]))
    return RotateReply(status)


def rotate(tenant: str, slug: str, *, now_ms: int, events_maxlen: int) -> Call[RotateReply]:
    return Call(
        _ROTATE,
        (keys.service(tenant, slug), keys.events(tenant)),
        (slug, events_maxlen, now_ms),
        _rotate_reply,
    )


class SweepResult(msgspec.Struct, frozen=True, kw_only=True):
    """sweep_service.lua's reply."""

    status: str
    """'ok', 'missing' (service deleted) or 'not_time' (policy changed)."""
    newly_expired: int
    """Keys marked expired (x:N) by this sweep; key.expired recorded for each if subscribed."""
    noact_set: bool
    """The service was found without an active unexpired key for the first time this episode."""


def _sweep_reply(reply: list[Any]) -> SweepResult:
    return SweepResult(
        status=decode.text(reply[0]), newly_expired=int(reply[1]), noact_set=bool(reply[2])
    )


def sweep_service(
    tenant: str, slug: str, *, now_ms: int | None, events_maxlen: int
) -> Call[SweepResult]:
    """Mark the newly expired keys of a time service; `now_ms` None = Redis TIME."""
    return Call(
        _SWEEP,
        (keys.tenant(tenant), keys.service(tenant, slug), keys.events(tenant)),
        ("" if now_ms is None else now_ms, events_maxlen, slug),
        _sweep_reply,
    )
