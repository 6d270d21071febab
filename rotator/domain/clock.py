"""Time as milliseconds since the epoch, passed in so tests can move it."""

from __future__ import annotations

import time
from collections.abc import Callable

DAY_MS = 86_400_000

Clock = Callable[[], int]
"""Returns the current time in ms since the epoch."""


def system_clock() -> int:
    return time.time_ns() // 1_000_000


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
