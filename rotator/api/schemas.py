"""Request bodies of the management API, as msgspec Structs.

Requests reject unknown fields (a typo must not be silently ignored) and leave
semantic checks to the store functions, which the CLI and the console share. In
PATCH bodies an absent field is UNSET (unchanged), distinct from an explicit null.
What the API answers is a record of rotator/domain/records.py, which the store
functions return as they are.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from rotator.store.services import DEFAULT_WARNING_PERCENT


class RequestBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies."""


# --- operator ---------------------------------------------------------------------------------
class TenantCreate(RequestBody):
    name: str
    demo: bool = False
    client_token: str | None = None
    """Write-only: the client token the tenant already uses (20-200 of A-Z a-z 0-9 - _),
    imported instead of a new one; stored only hashed."""


class TenantStatusPatch(RequestBody):
    """The operator's changes to a tenant (PATCH /v1/admin/tenants/{id})."""

    name: str | UnsetType = UNSET
    suspended: bool | UnsetType = UNSET
    """true: its client and app tokens get 403 at once, its admin token only reads;
    false: everything works again. The data is kept either way."""


# --- tenant settings --------------------------------------------------------------------------
class TenantPatch(RequestBody):
    name: str | UnsetType = UNSET
    ip_allowlist: list[str] | UnsetType = UNSET
    webhook_url: str | UnsetType | None = UNSET
    """null removes the webhook."""
    webhook_events: list[str] | UnsetType = UNSET
    webhook_secret: str | UnsetType = UNSET
    """Write-only: `whsec_` + base64 of 24 to 64 bytes."""


class ClientTokenIssue(RequestBody):
    """POST /v1/tenant/client-token (the body is optional: none issues one of ours)."""

    client_token: str | None = None
    """Write-only: a token of the tenant's choosing (as in TenantCreate)."""


# --- services ---------------------------------------------------------------------------------
class ServiceCreate(RequestBody):
    slug: str
    policy: str
    """manual | time | usage | round_robin | weighted | least_recently_used"""
    max_daily_requests: int | None = None
    max_requests_per_minute: int | None = None
    """Deliveries of the service in any 60 s (sliding); null: none."""
    limit_warning_percent: int | None = DEFAULT_WARNING_PERCENT
    """service.limit_warning when today's count reaches this % of max_daily_requests (1-99);
    0 or null: no warning."""
    key_ttl_minutes: int | None = None
    """Required for the time policy, refused for the others."""
    # key health (rotator/domain/health.py): absent or null = the default
    cooldown_seconds: int | None = None
    max_cooldown_seconds: int | None = None
    quota_reset_utc: str | None = None
    failure_threshold: int | None = None
    failure_window_seconds: int | None = None
    breaker_cooldown_seconds: int | None = None


class ServicePatch(RequestBody):
    policy: str | UnsetType = UNSET
    max_daily_requests: int | UnsetType | None = UNSET
    max_requests_per_minute: int | UnsetType | None = UNSET
    limit_warning_percent: int | UnsetType | None = UNSET
    key_ttl_minutes: int | UnsetType | None = UNSET
    # key health: null = back to the default
    cooldown_seconds: int | UnsetType | None = UNSET
    max_cooldown_seconds: int | UnsetType | None = UNSET
    quota_reset_utc: str | UnsetType | None = UNSET
    failure_threshold: int | UnsetType | None = UNSET
    failure_window_seconds: int | UnsetType | None = UNSET
    breaker_cooldown_seconds: int | UnsetType | None = UNSET


# --- provider keys ----------------------------------------------------------------------------
class KeyCreate(RequestBody):
    label: str
    secret: str
    """The provider key; stored encrypted, never returned (listings show `key_masked`)."""
    max_daily_requests: int | None = None
    max_requests_per_minute: int | None = None
    """Deliveries of this key in any 60 s (sliding); null: none."""
    weight: int = 1
    """Its share under the weighted policy (1-1000)."""


class KeyEntry(RequestBody):
    """One key of a bulk add."""

    secret: str
    """The provider key; stored encrypted, never returned."""
    label: str | None = None
    """Absent or null: `Key <id>`."""
    max_daily_requests: int | None = None
    max_requests_per_minute: int | None = None
    weight: int = 1


class KeysBulkCreate(RequestBody):
    keys: list[KeyEntry]
    """1 to 1000 keys, appended to the rotation in this order; all or none."""


class ImportEntry(RequestBody):
    """One row of an import (rotator/domain/import_file.py has the rules of each field)."""

    slug: str
    secret: str
    """The provider key; stored encrypted, never returned."""
    policy: str | None = None
    """Required when the service does not exist yet; else absent or the service's own."""
    limit: int | None = None
    """The service's max_daily_requests, for a service the import creates."""
    label: str | None = None
    """Absent or null: `Key <id>`."""
    key_ttl_minutes: int | None = None
    """For a time policy service the import creates."""


class ImportCreate(RequestBody):
    rows: list[ImportEntry]
    """Services and keys, as `rotator import` reads them from a file; all or nothing."""


class KeyMove(RequestBody):
    to: str
    """`front` or `end` of the rotation order."""


class KeyPatch(RequestBody):
    label: str | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    max_daily_requests: int | UnsetType | None = UNSET
    max_requests_per_minute: int | UnsetType | None = UNSET
    weight: int | UnsetType = UNSET


# --- reports (a client call, like /v1/next) -----------------------------------------------------
class ReportBody(RequestBody):
    """POST /v1/report: what the provider answered a key (rotator/store/report.py checks it)."""

    service: str
    key_id: int
    status: int
    """The provider's HTTP status; 0 when it gave no answer (timeout, refused connection)."""
    retry_after: int | None = None
    """The provider's Retry-After, in seconds."""
    error: str | None = None
    """The provider's error type (`insufficient_quota`, `rate_limit_exceeded`)."""


# --- apps -------------------------------------------------------------------------------------
class AppCreate(RequestBody):
    name: str
    ip_allowlist: list[str] = msgspec.field(default_factory=list)
    max_daily_requests: int | None = None
    app_token: str | None = None
    """Write-only: the app token it already uses (20-200 of A-Z a-z 0-9 - _), imported
    instead of a new one; stored only hashed."""


class AppTokenIssue(RequestBody):
    """POST /v1/apps/{id}/token (the body is optional: none issues one of ours)."""

    app_token: str | None = None
    """Write-only: a token of the tenant's choosing (as in AppCreate)."""


class AppPatch(RequestBody):
    name: str | UnsetType = UNSET
    ip_allowlist: list[str] | UnsetType = UNSET
    """Replaces the allowlist; [] allows any address."""
    max_daily_requests: int | UnsetType | None = UNSET
    """null removes the app's own limit."""
    suspended: bool | UnsetType = UNSET
    """true: the app's token gets `403 invalid token` at once, until false."""
