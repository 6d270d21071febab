"""A service's rotation as listings show it at one instant: each key's state and expiry, the
current key, and when a time service's keys run out.

The rules are the delivery script's (scripts/lua/next_key.lua decides with them on the hot
path; the management scripts share them through scripts/lua/lib/rotation.lua); this module
states them once for everything that only reads, so a listing says what the next delivery
will do:

- a key is *usable* when it is active, not cooling down (key health: a report cooled it
  until a time still to come) and, under the time policy, not expired;
- a time-policy key expires `ttl_ms` after it entered rotation (its first delivery); one that
  has not entered yet is not expired;
- the current key of a manual or time service is the first usable key walking the rotation
  order from the pointer `cur` (the manual primary, the time policy's key in use), wrapping
  around; from the first key when the pointer names no key of the service. The usage,
  round_robin, weighted and least_recently_used policies have none (each delivery picks by
  the policy's own state: scripts/lua/next_key.lua), and their keys never expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from rotator.domain.models import Policy

HAS_CURRENT = frozenset((Policy.MANUAL.value, Policy.TIME.value))
"""The policies with a current key (a pointer walked in rotation order)."""

KeyState = Literal["active", "expired", "disabled", "cooling_down"]


class Slot(msgspec.Struct, frozen=True):
    """One key's place in its service's rotation."""

    id: int
    active: bool
    entered_ms: int | None
    """When it entered rotation (time policy: its first delivery); None before."""
    cooldown_until_ms: int | None = None
    """Key health: the end of its cooldown (the service's 'cool' entry; it may have passed)."""


def cooling(slot: Slot, now_ms: int) -> bool:
    """Whether a report's cooldown keeps the key out of rotation at `now_ms` (one that has
    ended does not: the key has recovered, as the delivery script's key_available says)."""
    return slot.cooldown_until_ms is not None and now_ms < slot.cooldown_until_ms


def expires_at_ms(slot: Slot, ttl_ms: int | None) -> int | None:
    """When a time-policy key stops being delivered; None until it has entered rotation
    (or without a lifetime: the other policies)."""
    if ttl_ms is None or slot.entered_ms is None:
        return None
    return slot.entered_ms + ttl_ms


def state(slot: Slot, ttl_ms: int | None, now_ms: int) -> KeyState:
    """`disabled` (active false), else `expired` (past its lifetime: for good), else
    `cooling_down`, else `active`."""
    if not slot.active:
        return "disabled"
    expiry = expires_at_ms(slot, ttl_ms)
    if expiry is not None and now_ms >= expiry:
        return "expired"
    if cooling(slot, now_ms):
        return "cooling_down"
    return "active"


def usable(slot: Slot, ttl_ms: int | None, now_ms: int) -> bool:
    return state(slot, ttl_ms, now_ms) == "active"


def current(
    policy: str, slots: Sequence[Slot], pointer: int | None, ttl_ms: int | None, now_ms: int
) -> int | None:
    """The id of the key a manual or time service delivers now (before any per-key limit
    makes a delivery overflow to the next); None for the other policies or when no key is
    usable."""
    if policy not in HAS_CURRENT:
        return None
    start = next((i for i, s in enumerate(slots) if s.id == pointer), 0)
    for step in range(len(slots)):
        slot = slots[(start + step) % len(slots)]
        if usable(slot, ttl_ms, now_ms):
            return slot.id
    return None


def run_out_ms(
    policy: str, slots: Sequence[Slot], pointer: int | None, ttl_ms: int | None, now_ms: int
) -> int | None:
    """When a time service will have no usable key left (`503 no active keys`) unless keys are
    added or enabled: the earliest such instant, reached when deliveries keep coming (a key's
    lifetime starts at its first delivery, so quiet spells push it later). None for the other
    policies, and when no key is usable now.

    From the current key on, in rotation order: a key that has entered rotation lasts until
    it expires, one that has not lasts `ttl_ms` from when the previous one ran out."""
    if policy != Policy.TIME.value or ttl_ms is None:
        return None
    first = current(policy, slots, pointer, ttl_ms, now_ms)
    if first is None:
        return None
    start = next(i for i, s in enumerate(slots) if s.id == first)
    until = now_ms
    for step in range(len(slots)):
        slot = slots[(start + step) % len(slots)]
        if not slot.active:
            continue
        if slot.entered_ms is None:
            until += ttl_ms
        elif slot.entered_ms + ttl_ms > until:
            until = slot.entered_ms + ttl_ms
    return until
