"""Request and response bodies of the management API, as msgspec Structs.

Requests reject unknown fields (a typo must not be silently ignored) and leave
semantic checks to the store functions, which the CLI shares. In PATCH bodies
an absent field is UNSET (unchanged), distinct from an explicit null.
Responses never carry a secret, except the tokens (and a generated webhook
secret) that are shown once, in the response that creates them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from msgspec import UNSET, UnsetType

from rotator.store.apps import AppRecord
from rotator.store.services import KeyRecord, ServiceRecord
from rotator.store.tenants import TenantRecord


class RequestBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies."""


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC, millisecond precision: how every management response shows a time."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


# --- operator ---------------------------------------------------------------------------------
class TenantCreate(RequestBody):
    name: str
    demo: bool = False


class TenantCreated(msgspec.Struct, kw_only=True):
    id: str
    name: str
    demo: bool
    created_at: str
    admin_token: str
    """Shown once: only its hash is stored."""
    client_token: str
    """Shown once: only its hash is stored."""


class TenantSummary(msgspec.Struct, kw_only=True):
    id: str
    name: str
    demo: bool
    created_at: str

    @classmethod
    def of(cls, r: TenantRecord) -> TenantSummary:
        return cls(id=r.id, name=r.name, demo=r.demo, created_at=iso_ms(r.created_ms))


# --- tenant settings --------------------------------------------------------------------------
class TenantPatch(RequestBody):
    name: str | UnsetType = UNSET
    ip_allowlist: list[str] | UnsetType = UNSET
    webhook_url: str | UnsetType | None = UNSET
    """null removes the webhook."""
    webhook_events: list[str] | UnsetType = UNSET
    webhook_secret: str | UnsetType = UNSET
    """Write-only: `whsec_` + base64 of 24 to 64 bytes."""


class TenantSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str
    demo: bool
    created_at: str
    ip_allowlist: list[str]
    webhook_url: str | None
    webhook_events: list[str]
    webhook_secret_set: bool
    webhook_secret: str | None = None
    """Present once: in the PATCH response that generated it (a webhook set without one)."""

    @classmethod
    def of(cls, r: TenantRecord, generated_secret: str | None = None) -> TenantSettings:
        return cls(
            id=r.id,
            name=r.name,
            demo=r.demo,
            created_at=iso_ms(r.created_ms),
            ip_allowlist=r.ip_allowlist,
            webhook_url=r.webhook_url,
            webhook_events=r.webhook_events,
            webhook_secret_set=r.webhook_secret_set,
            webhook_secret=generated_secret,
        )


class ClientToken(msgspec.Struct, kw_only=True):
    client_token: str
    """Shown once; the previous client token stopped working when this one was issued."""


# --- services ---------------------------------------------------------------------------------
class ServiceCreate(RequestBody):
    slug: str
    policy: str
    """manual | time | usage"""
    max_daily_requests: int | None = None
    key_ttl_minutes: int | None = None
    """Required for the time policy, refused for the others."""


class ServicePatch(RequestBody):
    policy: str | UnsetType = UNSET
    max_daily_requests: int | UnsetType | None = UNSET
    key_ttl_minutes: int | UnsetType | None = UNSET


class Service(msgspec.Struct, kw_only=True):
    slug: str
    policy: str
    max_daily_requests: int | None
    key_ttl_minutes: int | None
    created_at: str
    keys: int
    active_keys: int

    @classmethod
    def of(cls, r: ServiceRecord) -> Service:
        return cls(
            slug=r.slug,
            policy=r.policy,
            max_daily_requests=r.max_daily_requests,
            key_ttl_minutes=r.key_ttl_minutes,
            created_at=iso_ms(r.created_ms),
            keys=r.key_count,
            active_keys=r.active_key_count,
        )


# --- provider keys ----------------------------------------------------------------------------
class KeyCreate(RequestBody):
    label: str
    secret: str
    """The provider key; stored encrypted, never returned (listings show `key_masked`)."""
    max_daily_requests: int | None = None


class KeyPatch(RequestBody):
    label: str | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    max_daily_requests: int | UnsetType | None = UNSET


class Key(msgspec.Struct, kw_only=True):
    id: int
    label: str
    active: bool
    max_daily_requests: int | None
    key_masked: str
    created_at: str
    current: bool
    """The service's current key (manual primary, time policy's key in use)."""

    @classmethod
    def of(cls, r: KeyRecord) -> Key:
        return cls(
            id=r.id,
            label=r.label,
            active=r.active,
            max_daily_requests=r.max_daily_requests,
            key_masked=r.masked,
            created_at=iso_ms(r.created_ms),
            current=r.current,
        )


# --- apps -------------------------------------------------------------------------------------
class AppCreate(RequestBody):
    name: str
    ip_allowlist: list[str] = msgspec.field(default_factory=list)
    max_daily_requests: int | None = None


class App(msgspec.Struct, kw_only=True):
    id: int
    name: str
    ip_allowlist: list[str]
    max_daily_requests: int | None
    created_at: str

    @classmethod
    def of(cls, r: AppRecord) -> App:
        return cls(
            id=r.id,
            name=r.name,
            ip_allowlist=r.ip_allowlist,
            max_daily_requests=r.max_daily_requests,
            created_at=iso_ms(r.created_ms),
        )


class AppCreated(App, kw_only=True):
    app_token: str
    """Shown once: only its hash is stored."""


# --- rotation and usage ----------------------------------------------------------------------
class Rotated(msgspec.Struct, kw_only=True):
    service: str
    from_key_id: int
    to_key_id: int


class KeyUsage(msgspec.Struct, kw_only=True):
    key_id: int
    label: str
    deliveries: int


class DayUsage(msgspec.Struct, kw_only=True):
    date: str
    """UTC day, YYYY-MM-DD."""
    total: int
    """The service's deliveries that day (keys deleted since included)."""
    keys: list[KeyUsage]


class ServiceUsage(msgspec.Struct, kw_only=True):
    service: str
    days: list[DayUsage]
    """Newest first."""
