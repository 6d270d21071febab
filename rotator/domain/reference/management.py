"""What management operations and the expiry sweep change that a delivery then reads.

Input checks (the store's) are not restated: the model is given valid requests only.

Rules about the current key (manual and time policies):
- Disabling or deleting the current key moves the pointer to the next usable key
  (key.rotated, reason `disabled` / `deleted`); with none usable it stays (disabling) or
  moves to the deleted key's successor in rotation order (deleting).
- Enabling a key never changes which key is current: the pointer is pinned to the current
  key first (time: key.rotated, reason `expired`, when the pointer sat on an expired key).
  Enabling a key that was not usable (disabled, or expired) restarts its lifetime.
- Adding or enabling a key ends a no-active-keys episode (the next one is recorded again).
- A policy change starts afresh: no pointer, every lifetime unstarted, no episode, the
  round_robin place, the weighted cycle and the least_recently_used order forgotten; the
  manual primary is set aside when the service leaves manual and put back when it returns.
- The weighted cycle restarts (every running weight 0) when a key is added or removed, and
  when a key is enabled, disabled or given a weight (even the one it had).
- Rotating (manual only) moves the primary to the key after the current one (key.rotated,
  reason `manual`, unless it is the only usable key).
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from rotator.domain.reference import rotation
from rotator.domain.reference.model import Model
from rotator.domain.reference.state import (
    ModelApp,
    ModelHealth,
    ModelKey,
    ModelService,
    Network,
)

SERVICE_FLAGS = ("service.limit_reached", "service.limit_warning")
"""Once-a-day flags (DayCounts.recorded) whose second element is a service's slug."""


class Rotated(msgspec.Struct, frozen=True):
    from_key_id: int
    to_key_id: int


class Swept(msgspec.Struct, frozen=True):
    status: str
    """ok, or not_time when the service no longer uses the time policy."""
    newly_expired: int
    noact_set: bool


def _rotated(model: Model, service: ModelService, from_id: int, to_id: int, reason: str) -> None:
    model.emit(
        "key.rotated",
        {"service": service.slug, "from_key_id": from_id, "to_key_id": to_id, "reason": reason},
    )


# --- services -----------------------------------------------------------------------------
def create_service(
    model: Model,
    slug: str,
    *,
    policy: str,
    max_daily_requests: int | None,
    limit_warning_percent: int | None,
    ttl_ms: int | None,
    max_requests_per_minute: int | None = None,
) -> None:
    """A new service (one deleted and created again starts from nothing: delete_service)."""
    model.services[slug] = ModelService(
        slug=slug,
        policy=policy,
        max_daily_requests=max_daily_requests,
        max_requests_per_minute=max_requests_per_minute,
        limit_warning_percent=limit_warning_percent,
        ttl_ms=ttl_ms if policy == "time" else None,
    )


def delete_service(model: Model, slug: str) -> None:
    """The service goes with its keys and everything it counted: every day's count of it
    and of its keys, its reports, its once-a-day flags and its per-minute window (an app's
    count stays: it counts the app's deliveries from every service)."""
    service = model.services.pop(slug)
    ids = {key.id for key in service.keys}
    model.service_windows.pop(slug, None)
    for counts in model.days.values():
        counts.services.pop(slug, None)
        for key_id in ids:
            counts.keys.pop(key_id, None)
        counts.reports = {kind: n for kind, n in counts.reports.items() if kind[0] != slug}
        counts.recorded = {
            flag for flag in counts.recorded
            if not (flag[0] in SERVICE_FLAGS and flag[1] == slug)
            and not (flag[0] == "key.rotated" and flag[1] in ids)
        }  # fmt: skip


def update_service(
    model: Model,
    slug: str,
    *,
    policy: str | UnsetType = UNSET,
    max_daily_requests: int | UnsetType | None = UNSET,
    limit_warning_percent: int | UnsetType | None = UNSET,
    ttl_ms: int | UnsetType | None = UNSET,
    max_requests_per_minute: int | UnsetType | None = UNSET,
) -> None:
    service = model.services[slug]
    _assign(
        service,
        max_daily_requests=max_daily_requests,
        max_requests_per_minute=max_requests_per_minute,
        limit_warning_percent=limit_warning_percent,
    )
    new_policy = service.policy if policy is UNSET else policy
    if ttl_ms is not UNSET:
        service.ttl_ms = ttl_ms
    elif new_policy != "time":
        service.ttl_ms = None
    if new_policy == service.policy:
        return
    if service.policy == "manual":
        service.manual_aside = service.pointer
    service.policy = new_policy
    service.pointer = None
    service.no_active_recorded = False
    service.round_robin_last = service.lru_sequence = 0
    for key in service.keys:
        key.entered_ms = None
        key.expiry_recorded = False
        key.current_weight = key.last_used = 0
    if new_policy == "manual" and service.manual_aside is not None:
        service.pointer, service.manual_aside = service.manual_aside, None


def rotate(model: Model, slug: str, now_ms: int) -> Rotated | str:
    """The new primary, or why not: `policy` (not manual) or `nokeys` (no usable key)."""
    service = model.services[slug]
    if service.policy != "manual":
        return "policy"
    current = rotation.current(service, now_ms)
    if current is None:
        return "nokeys"
    to_id = rotation.after(service, current.id, now_ms) or current.id
    service.pointer = to_id
    if to_id != current.id:
        _rotated(model, service, current.id, to_id, "manual")
    return Rotated(current.id, to_id)


# --- keys ---------------------------------------------------------------------------------
def _restart_weighted(service: ModelService) -> None:
    for key in service.keys:
        key.current_weight = 0


def add_key(
    model: Model,
    slug: str,
    *,
    label: str,
    max_daily_requests: int | None,
    weight: int = 1,
    max_requests_per_minute: int | None = None,
) -> int:
    service = model.services[slug]
    key_id = model.next_id()
    _restart_weighted(service)
    service.keys.append(
        ModelKey(
            id=key_id, label=label, max_daily_requests=max_daily_requests, weight=weight,
            max_requests_per_minute=max_requests_per_minute,
        )
    )  # fmt: skip
    service.no_active_recorded = False
    return key_id


def update_key(
    model: Model,
    slug: str,
    key_id: int,
    *,
    active: bool | UnsetType = UNSET,
    max_daily_requests: int | UnsetType | None = UNSET,
    max_requests_per_minute: int | UnsetType | None = UNSET,
    weight: int | UnsetType = UNSET,
    now_ms: int,
) -> None:
    service = model.services[slug]
    key = service.key(key_id)
    assert key is not None
    was_current = rotation.current(service, now_ms)
    # disabled or expired: its lifetime restarts (a key only cooling down keeps it)
    restarts = not key.active or rotation.expired(service, key, now_ms)
    _assign(
        key,
        max_daily_requests=max_daily_requests,
        max_requests_per_minute=max_requests_per_minute,
        weight=weight,
    )
    if weight is not UNSET or active is not UNSET:
        _restart_weighted(service)
    if active is True:
        key.active = True
        _pin(model, service, was_current, now_ms)
        if restarts:
            key.entered_ms = None
            key.expiry_recorded = False
        # a person's enable clears what reports left (the reason, failures, breaker,
        # cooldown); the last report stays, as history
        key.health = ModelHealth(last_report=key.health.last_report)
        service.no_active_recorded = False
    elif active is False:
        key.active = False
        if was_current is key:
            to_id = rotation.after(service, key_id, now_ms)
            if to_id is not None:
                service.pointer = to_id
                _rotated(model, service, key_id, to_id, "disabled")


def move_key(model: Model, slug: str, key_id: int, *, to: str, now_ms: int) -> None:
    """To the `front` or the `end` of the rotation order: what comes after the current key
    changes, never which key is current."""
    service = model.services[slug]
    key = service.key(key_id)
    assert key is not None
    _pin(model, service, rotation.current(service, now_ms), now_ms)
    service.keys.remove(key)
    if to == "front":
        service.keys.insert(0, key)
    else:
        service.keys.append(key)


def _pin(model: Model, service: ModelService, current: ModelKey | None, now_ms: int) -> None:
    """Point the pointer at the current key before a change that would let the walk find
    another (enabling or moving a key). A time service's pointer left on an expired key moves
    on as the next delivery would move it, with the same key.rotated (reason `expired`)."""
    if current is None or current.id == service.pointer:
        return
    if model.pointer_expired(service, now_ms):
        _rotated(model, service, service.pointer, current.id, "expired")
    service.pointer = current.id


def remove_key(model: Model, slug: str, key_id: int, *, now_ms: int) -> None:
    service = model.services[slug]
    ids = [k.id for k in service.keys]
    was_current = rotation.current(service, now_ms)
    was_current_id = was_current.id if was_current else None
    to_id = rotation.after(service, key_id, now_ms) if was_current_id == key_id else None
    position = ids.index(key_id)
    kept = ids[:position] + ids[position + 1 :]
    # the key after it in rotation order (not wrapping), else the first one left
    successor = ids[position + 1] if position + 1 < len(ids) else (kept[0] if kept else None)
    del service.keys[position]
    _restart_weighted(service)
    has_pointer = service.policy in rotation.HAS_CURRENT
    # the policy's pointer: to the key current now (the next usable one if it was this key)
    if has_pointer and was_current_id == key_id:
        service.pointer = to_id or successor
    elif service.pointer == key_id:
        service.pointer = (was_current_id if has_pointer else None) or successor
    # the manual primary set aside: to the key after it
    if service.manual_aside == key_id:
        service.manual_aside = successor
    if to_id is not None:
        _rotated(model, service, key_id, to_id, "deleted")


# --- the expiry sweep ---------------------------------------------------------------------
def sweep(model: Model, slug: str, now_ms: int) -> Swept:
    """A time service's keys whose lifetime has ended get key.expired (once per lifetime); a
    service with keys but none usable gets service.no_active_keys (once per episode, shared
    with deliveries). Deliveries never depend on the sweep."""
    service = model.services[slug]
    if service.policy != "time":
        return Swept("not_time", 0, False)
    if not service.keys:
        return Swept("ok", 0, False)
    newly_expired = 0
    available = False
    for key in service.keys:
        if not key.active:
            continue
        if rotation.expired(service, key, now_ms):
            if not key.expiry_recorded:
                key.expiry_recorded = True
                newly_expired += 1
                model.emit("key.expired", {"service": slug, "key_id": key.id, "label": key.label})
        else:
            available = True
    noact_set = False
    if not available and not service.no_active_recorded:
        service.no_active_recorded = noact_set = True
        model.emit("service.no_active_keys", {"service": slug})
    return Swept("ok", newly_expired, noact_set)


# --- apps and the tenant ------------------------------------------------------------------
def add_app(model: Model, *, allowlist: list[Network], max_daily_requests: int | None) -> int:
    app_id = model.next_id()
    model.apps[app_id] = ModelApp(
        id=app_id, allowlist=allowlist, max_daily_requests=max_daily_requests
    )
    return app_id


def _assign(target: object, **changes: object) -> None:
    """Set each field given (UNSET = unchanged; None is a value: "no limit")."""
    for name, value in changes.items():
        if value is not UNSET:
            setattr(target, name, value)
