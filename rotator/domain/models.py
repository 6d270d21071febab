"""Domain types shared by the API, the store and the workers."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class Policy(StrEnum):
    MANUAL = "manual"
    TIME = "time"
    USAGE = "usage"


EVENT_TYPES = (
    "key.delivered",
    "service.limit_reached",
    "key.expired",
    "service.no_active_keys",
    "key.rotated",
    "key.decrypt_failed",
)
DEFAULT_EVENTS = tuple(t for t in EVENT_TYPES if t != "key.delivered")
"""Subscribed when a tenant sets a webhook without choosing: key.delivered is opt-in."""


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
    demo: bool
    receipt: tuple[Any, ...] = ()
    """What the store needs to undo this delivery's counting when it fails after the script
    (DeliveryStore.refund); its layout is the store's own."""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event, as webhooks carry it (the body of the POST)."""

    id: str
    type: str
    created_at: str
    tenant: str
    data: dict
