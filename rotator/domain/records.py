"""The management API's records: one Struct per resource, one set of field names.

The store functions return these, the API answers with them, the CLI prints them
(`--json` is their JSON, byte for byte the API's) and the console renders them, so a
field has one name from the store to every door. Records never carry a secret; the
few that carry a token or a generated webhook secret exist once, in the answer that
created it (the `...Created` records and the token records).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from rotator.domain.rotation import KeyState


class Record(msgspec.Struct, kw_only=True, frozen=True):
    """Base of records."""


# --- tenants ------------------------------------------------------------------------------
class Tenant(Record, omit_defaults=True):
    """A tenant's settings (GET/PATCH /v1/tenant): never a token or the webhook secret."""

    id: str
    name: str
    demo: bool
    suspended: bool
    """Set by the operator: its client and app tokens get `403 invalid token` and its admin
    token reads but cannot write (`403 tenant suspended`); all its data is kept."""
    created_at: str
    ip_allowlist: list[str]
    webhook_url: str | None
    """Credentials a URL stored by an earlier version may hold are shown as `***`."""
    webhook_events: list[str]
    webhook_secret_set: bool
    webhook_secret: str | None = None
    """Present once: in the PATCH answer that generated it (a webhook set without one)."""


class TenantCreated(Record):
    id: str
    name: str
    demo: bool
    created_at: str
    admin_token: str
    """Shown once: only its hash is stored."""
    client_token: str
    """Shown once: only its hash is stored."""


class TenantSummary(Record):
    """A row of the operator's tenant list (GET /v1/admin/tenants)."""

    id: str
    name: str
    demo: bool
    suspended: bool
    created_at: str
    services: int
    keys: int
    """Provider keys in all its services."""
    apps: int
    deliveries_today: int
    """Keys delivered this UTC day by its current services."""


class TenantDetail(Tenant, kw_only=True, frozen=True, omit_defaults=True):
    """One tenant as the operator sees it (GET|PATCH /v1/admin/tenants/{id}): its settings
    and the counts of its list row."""

    services: int
    keys: int
    apps: int
    deliveries_today: int


class TenantDeletion(Record):
    """What DELETE /v1/admin/tenants/{id} did. Its tokens stopped working before the answer,
    whatever the state."""

    id: str
    state: Literal["deleted", "deleting"]
    """`deleted`: every key of the tenant is gone (200). `deleting`: the rest is being
    removed in the background by the worker (202); `rotator tenant delete` finishes it too."""
    keys_removed: int
    """Keys this request removed in batches (besides the tenant's own hash and console
    sessions, which went in its first step)."""


class ClientToken(Record):
    client_token: str
    """Shown once; the previous client token stopped working when this one was issued."""


class AdminToken(Record):
    admin_token: str
    """Shown once; the previous admin token (and every console session signed in with it)
    stopped working when this one was issued."""


# --- services and keys --------------------------------------------------------------------
class Service(Record):
    slug: str
    policy: str
    max_daily_requests: int | None
    max_requests_per_minute: int | None
    """Deliveries in any 60 s (a sliding window); None: no per-minute limit."""
    limit_warning_percent: int | None
    """service.limit_warning is recorded when today's count reaches this share of
    max_daily_requests (once per UTC day and limit value); None: no warning."""
    key_ttl_minutes: int | None
    created_at: str
    keys: int
    active_keys: int
    """Keys a delivery can pick now: active and, under the time policy, not expired."""
    keys_run_out_at: str | None
    """Time policy: the earliest instant no key is left (`503 no active keys`) unless keys
    are added or enabled, reached if deliveries keep coming (a key's lifetime starts at its
    first delivery). None for the other policies, or when no key is usable now."""
    # key health (POST /v1/report; rotator/domain/health.py): each the service's own value,
    # or the default when it has none
    cooldown_seconds: int
    """A 429 report without `retry_after` cools the key down this long."""
    max_cooldown_seconds: int
    """The longest cooldown a `retry_after` or the circuit breaker's backoff can set."""
    quota_reset_utc: str
    """HH:MM UTC: when the provider's day starts again; a quota error cools a key until then."""
    failure_threshold: int
    """Failures (5xx, no response) within failure_window_seconds that open the breaker."""
    failure_window_seconds: int
    breaker_cooldown_seconds: int
    """The open breaker's first cooldown, doubled at each consecutive opening."""


class Key(Record):
    """A provider key as listings show it: the masked form only, never the secret."""

    id: int
    label: str
    active: bool
    state: KeyState
    """`active` (deliverable), `expired` (time policy: its lifetime is over), `disabled`
    (active false: by a person, or by a 401/403 report: see `disabled_reason`),
    `cooling_down` (a report cooled it down until `cooldown_until`)."""
    max_daily_requests: int | None
    max_requests_per_minute: int | None
    """Deliveries of this key in any 60 s (a sliding window); None: none."""
    weight: int
    """Its share of deliveries under the weighted policy (default 1)."""
    key_masked: str
    created_at: str
    current: bool
    """The key a manual or time service delivers now (overflowing to the next only while it
    is at its own daily limit); false for every key of a usage service."""
    expires_at: str | None
    """Time policy: when it stops being delivered (it entered rotation + key_ttl_minutes);
    None before its first delivery, and for the other policies."""
    cooldown_until: str | None
    """While cooling down: when it is delivered again; None otherwise."""
    disabled_reason: str | None
    """Why a report disabled it (`provider answered 401: invalid_api_key`); None when it is
    enabled, or a person disabled it."""
    failures: int
    """Failures (5xx, no response) reported in the current window: the circuit breaker opens
    at the service's failure_threshold."""
    last_report: LastReport | None
    """The last report on it (POST /v1/report); None before any."""


class LastReport(Record):
    """A client's last report on a key: what the provider answered it."""

    status: int
    """The provider's HTTP status; 0: no response (timeout, connection refused)."""
    error: str | None
    """The provider's error type, as reported (lower case)."""
    reported_at: str


class ReportAnswer(Record, omit_defaults=True):
    """The 202 of POST /v1/report: the key's state after the report."""

    state: KeyState
    cooldown_until: str | None = None
    """While it cools down: when it is delivered again (absent otherwise)."""


class KeysAdded(Record):
    """The answer of a bulk add: the new keys, in the order given (and of the rotation)."""

    keys: list[Key]


class ImportedService(Record):
    """One service of an import: created by it, or existing and given more keys."""

    slug: str
    policy: str
    created: bool
    key_ids: list[int]
    """The keys the import added to it, in the file's order (and of the rotation)."""


class Imported(Record):
    """The answer of an import (`POST /v1/import`, `rotator import`, the console's page)."""

    services: list[ImportedService]
    keys_added: int


class Rotated(Record):
    service: str
    from_key_id: int
    to_key_id: int


class KeyUsage(Record):
    key_id: int
    label: str
    deliveries: int


class DayUsage(Record):
    date: str
    """UTC day, YYYY-MM-DD."""
    total: int
    """The service's deliveries that day (keys deleted since included)."""
    keys: list[KeyUsage]
    reports: dict[str, int]
    """Reports that day (POST /v1/report) by the provider's status class: `2xx`, `429`,
    `4xx` (other than 429), `5xx`, `none` (no response), `other` (1xx, 3xx)."""


class ServiceUsage(Record):
    service: str
    days: list[DayUsage]
    """Newest first."""


# --- apps ---------------------------------------------------------------------------------
class App(Record):
    id: int
    name: str
    ip_allowlist: list[str]
    max_daily_requests: int | None
    suspended: bool
    """Its token gets `403 invalid token` until it is resumed; the app is kept."""
    created_at: str


class AppCreated(App, kw_only=True, frozen=True):
    app_token: str
    """Shown once: only its hash is stored."""


class AppToken(Record):
    app_token: str
    """Shown once; the app's previous token stopped working when this one was issued."""


# --- webhooks -----------------------------------------------------------------------------
Outcome = Literal["delivered", "retrying", "failed"]


class DeliveryAttempt(Record):
    """One logged webhook delivery attempt."""

    event_id: str
    type: str
    attempts: int
    """Attempts so far, this one included."""
    status_code: int | None
    """The receiver's HTTP status; None when no response came."""
    error: str | None
    """Why the attempt failed (never holds a secret); None when delivered."""
    outcome: Outcome
    updated_at: str


class DeliveryPage(Record):
    deliveries: list[DeliveryAttempt]
    """One entry per attempt, newest first: an event retried twice then delivered has three."""
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; null at the end of the log."""


class TestEventSent(Record):
    event_id: str
    """The recorded `webhook.test` event; the workers deliver it like any other."""


# --- audit log ----------------------------------------------------------------------------
class AuditRecord(Record):
    """One management write, or an authenticated attempt a rule refused: who, from where,
    what, how it ended. Never a provider key, token, webhook secret or password."""

    id: str
    """The record's position in its log (`<ms>-<seq>`): pass it as `cursor` to read on."""
    at: str
    tenant: str | None
    """The tenant written to; null for an operator write that names none."""
    role: Literal["operator", "tenant_admin"]
    via: Literal["api", "console", "cli"]
    credential: str
    """`token:<fp>`, `session:<fp>` (fp: the first 8 hex digits of the SHA-256 of the token's
    or session's secret, never the secret) or `cli:<os user>`."""
    address: str
    """The client's address (as trusted proxies name it), or `cli`."""
    action: str
    """The store operation, e.g. `create_service`, `update_key`, `issue_app_token`."""
    resource: str
    """What it acted on: the path's ids joined by `/` (`openai/7`), or the id it created."""
    fields: dict[str, Any]
    """The request's fields with their values; a secret's value is `[redacted]`."""
    outcome: Literal["ok", "refused"]
    reason: str | None
    """Why it was refused (the error the caller got); null when it went through."""
    request_id: str | None


class AuditPage(Record):
    records: list[AuditRecord]
    """Newest first."""
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; null at the end of the log. A page may hold
    fewer records than `limit` when filters skip many: follow `next_cursor` until null."""
