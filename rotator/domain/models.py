"""Domain types shared by the API, the store and the workers."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class Policy(StrEnum):
    MANUAL = "manual"
    TIME = "time"
    USAGE = "usage"
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    LEAST_RECENTLY_USED = "least_recently_used"


EVENT_TYPES = (
    "key.delivered",
    "service.limit_warning",
    "service.limit_reached",
    "app.limit_reached",
    "key.expired",
    "service.no_active_keys",
    "key.rotated",
    "key.decrypt_failed",
    "key.cooling_down",
    "key.recovered",
    "key.disabled",
    "audit.write",
    "audit.refused",
)
OPT_IN_EVENTS = ("key.delivered", "audit.write", "audit.refused")
"""Never subscribed by default: one event per delivery, one per management write."""
DEFAULT_EVENTS = tuple(t for t in EVENT_TYPES if t not in OPT_IN_EVENTS)
"""Subscribed when a tenant sets a webhook without choosing: OPT_IN_EVENTS are opt-in."""


ROTATION_REASONS = ("manual", "expired", "disabled", "deleted", "usage")
"""Why key.rotated was recorded (its `reason`): an admin rotated; the current key's lifetime
ended (time policy); the current key was disabled or deleted; the current key reached its own
daily limit and deliveries moved on to the next key (manual and time policies)."""


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    """A provider key to add, as a bulk request (or a file of keys) gives it, before the
    store's checks."""

    secret: str
    label: str | None = None
    """None: the store names it `Key <id>`."""
    max_daily_requests: int | None = None
    max_requests_per_minute: int | None = None
    weight: int = 1


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """What the delivery script picked, before decryption."""

    tenant: str
    service: str
    key_id: int
    label: str
    ciphertext: bytes
    usage_today: int
    policy: str
    max_daily_requests: int | None
    app_max_daily_requests: int | msgspec.UnsetType | None = msgspec.UNSET
    """The app's own daily limit (None: none); UNSET for a tenant client token."""
    demo: bool
    quota: int = 0
    """The tightest daily limit that applies (service or app: the one with fewer requests
    left); 0 when none applies."""
    remaining: int = 0
    """Requests left today under `quota`, after this one."""
    reset_s: int = 0
    """Seconds to the end of the UTC day, when the daily counters start again."""
    max_requests_per_minute: int | msgspec.UnsetType = msgspec.UNSET
    """The service's per-minute limit; UNSET when it has none (the 200 then keeps the hosted
    guide's shape)."""
    receipt: tuple[Any, ...] = ()
    """What the store needs to undo this delivery's counting when it fails after the script
    (DeliveryStore.refund); its layout is the store's own."""
    key_ids: tuple[str, ...] | None = None
    """The service's key ids when they changed since this process's last delivery of it
    (else None): the API's decrypted-key cache forgets the others (api/secret_cache.py)."""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event, as webhooks carry it (the body of the POST)."""

    id: str
    type: str
    created_at: str
    tenant: str
    data: dict
