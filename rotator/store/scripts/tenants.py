"""Wrappers of the tenant-wide scripts: field updates (with the copies every service holds),
the operator's counts, the webhook test event, app updates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_TENANT_UPDATE = load("tenant_update")
_TENANT_COUNTS = load("tenant_counts")
_EVENT_TEST = load("event_test")
_APP_UPDATE = load("app_update")
_APP_CREATE = load("app_create")
_APP_DELETE = load("app_delete")


def tenant_update(
    tenant: str,
    slugs: Sequence[str],
    fields: Mapping[str, Any],
    set_if_absent: tuple[str, Any] | None = None,
) -> Call[int]:
    """HSET `fields` (and HSETNX `set_if_absent`) on the tenant and copy the delivery's fields
    into each service of `slugs` (the caller's read of the services set): -1 no such tenant,
    0 the services changed meanwhile (nothing written: read and retry), 1 written, 2 written
    and `set_if_absent` set."""
    nx_field, nx_value = set_if_absent or ("", b"")
    return Call(
        _TENANT_UPDATE,
        (keys.tenant(tenant), keys.services(tenant), *(keys.service(tenant, s) for s in slugs)),
        (",".join(slugs), nx_field, nx_value, *(x for pair in fields.items() for x in pair)),
        decode.integer,
    )


class TenantCounts(msgspec.Struct, frozen=True):
    """tenant_counts.lua's reply, decoded."""

    name: str
    demo: bool
    created_ms: int
    suspended: bool
    services: int
    keys: int
    apps: int
    deliveries_today: int


def _counts(row: Any) -> TenantCounts | None:
    if row is None:
        return None
    return TenantCounts(
        name=decode.text(row[0]),
        demo=row[1] == b"1",
        created_ms=int(row[2] or 0),
        suspended=row[3] == b"1",
        services=row[4],
        keys=row[5],
        apps=row[6],
        deliveries_today=row[7],
    )


def tenant_counts(tenant: str, now_ms: int | None) -> Call[TenantCounts | None]:
    """A tenant's counts for the operator's listing (None: no such tenant); today's
    deliveries by the script's clock (`now_ms` None = Redis TIME)."""
    return Call(
        _TENANT_COUNTS,
        (keys.tenant(tenant), keys.services(tenant), keys.apps(tenant), keys.usage_prefix(tenant)),
        (keys.service(tenant, ""), "" if now_ms is None else now_ms),
        _counts,
    )


def event_test(tenant: str, data_json: bytes, *, events_maxlen: int) -> Call[str]:
    """Record webhook.test: its stream entry id ('' when the tenant has no webhook)."""
    return Call(
        _EVENT_TEST,
        (keys.tenant(tenant), keys.events(tenant)),
        (data_json, events_maxlen),
        decode.text,
    )


def app_update(tenant: str, app_id: int, fields: Mapping[str, Any]) -> Call[bool]:
    """Write `fields` to an existing app: False when there is no such app."""
    return Call(
        _APP_UPDATE,
        (keys.app(tenant, app_id),),
        tuple(x for kv in fields.items() for x in kv),
        decode.flag,
    )


def app_create(tenant: str, app_id: int, fields: Mapping[str, Any]) -> Call[bool]:
    """Write a new app's hash and add it to the tenant's apps."""
    return Call(
        _APP_CREATE,
        (keys.app(tenant, app_id), keys.apps(tenant)),
        (app_id, *(x for kv in fields.items() for x in kv)),
        decode.flag,
    )


def app_delete(tenant: str, app_id: int) -> Call[bool]:
    """Delete an app: False when there was no such app."""
    return Call(_APP_DELETE, (keys.app(tenant, app_id), keys.apps(tenant)), (app_id,), decode.flag)
