"""Time as milliseconds since the epoch, passed in so tests can move it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

DAY_MS = 86_400_000

Clock = Callable[[], int]
"""Returns the current time in ms since the epoch."""


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds (`2026-03-01T12:00:00.123Z`): how every response,
    event and log entry shows an instant."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def iso_day(day: int) -> str:
    """`YYYY-MM-DD` of a day number (utc_day)."""
    return datetime.fromtimestamp(day * DAY_MS / 1000, UTC).date().isoformat()


def utc_day(now_ms: int) -> int:
    """Days since 1970-01-01 (UTC) of an instant: the usage counters' day number."""
    return now_ms // DAY_MS


class FakeClock:
    """A clock tests can set and advance."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, *, ms: int = 0, s: float = 0, minutes: float = 0) -> None:
        self.now_ms += ms + int(s * 1000) + int(minutes * 60_000)
