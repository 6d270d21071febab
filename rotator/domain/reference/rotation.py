"""The current key of a service and the walk along the rotation order.

- A key is *available* when it is active and not cooling down (a report's cooldown that has
  not ended yet); *usable* when available and, under the time policy, its lifetime has not
  ended: it has not entered rotation yet, or now < entered + ttl.
- The *current* key of a manual or time service is the first usable key walking the rotation
  order from the pointer (the manual primary, the time policy's key in use), wrapping around;
  from the first key when the pointer names no key of the service. The usage policy has none.
- The key *after* a key is the next usable one walking on from it, never itself.
"""

from __future__ import annotations

from rotator.domain.reference.state import ModelKey, ModelService

HAS_CURRENT = ("manual", "time")


def expired(service: ModelService, key: ModelKey, now_ms: int) -> bool:
    return (
        service.policy == "time"
        and service.ttl_ms is not None
        and key.entered_ms is not None
        and now_ms >= key.entered_ms + service.ttl_ms
    )


def lifetime_ended(service: ModelService, key_id: int | None, now_ms: int) -> bool:
    """The time policy's key `key_id` has expired (whether or not it was disabled since):
    what key.rotated with reason `expired` reports when the current key moves on from it."""
    key = service.key(key_id) if key_id is not None else None
    return key is not None and expired(service, key, now_ms)


def cooling(key: ModelKey, now_ms: int) -> bool:
    until = key.health.cooldown_until_ms
    return until is not None and now_ms < until


def available(key: ModelKey, now_ms: int) -> bool:
    """The one rule every policy's selection asks (the prelude's key_available)."""
    return key.active and not cooling(key, now_ms)


def usable(service: ModelService, key: ModelKey, now_ms: int) -> bool:
    return available(key, now_ms) and not expired(service, key, now_ms)


def walk(service: ModelService, start: int | None) -> list[ModelKey]:
    """Every key once, in rotation order from the key `start` (the first key when `start`
    names none), wrapping around."""
    ids = [k.id for k in service.keys]
    first = ids.index(start) if start in ids else 0
    return service.keys[first:] + service.keys[:first]


def current(service: ModelService, now_ms: int) -> ModelKey | None:
    if service.policy not in HAS_CURRENT:
        return None
    return next((k for k in walk(service, service.pointer) if usable(service, k, now_ms)), None)


def after(service: ModelService, key_id: int, now_ms: int) -> int | None:
    """The first usable key after `key_id` in rotation order, never `key_id` itself."""
    if service.key(key_id) is None:
        return None
    for k in walk(service, key_id)[1:]:
        if usable(service, k, now_ms):
            return k.id
    return None
