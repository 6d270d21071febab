"""One log line per interval for a failure that repeats, saying how many it folded.

During a store outage a worker fails several times a second (every poll, every pump
pass, every reconnect attempt); one line each would bury the log. The first failure is
logged at once, then at most one line per `interval_s` with the count of failures
folded into it, and the recovery once, with the total.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

UNSCOPED = {"unscoped": True}
"""A folded line speaks for many requests: not for the one whose failure happened to write
it (rotator/logs.py leaves its request id and tenant out)."""


@dataclass(eq=False)
class FoldedWarning:
    """The failures of one thing (`what`, e.g. "the store"): first, every interval, recovery."""

    log: logging.Logger
    what: str
    interval_s: float = 60.0
    _: KW_ONLY
    action: str = "retrying with backoff"
    """What the process does meanwhile, said in the first line."""
    clock: Callable[[], float] = time.monotonic
    failures: int = field(default=0, init=False)
    """Failures since the last recovery (0 = not failing)."""
    total: int = field(default=0, init=False)
    """Failures ever (a metric's counter: rotator/metrics/fold.py)."""
    _since: float = field(default=0.0, init=False)
    _last_at: float = field(default=0.0, init=False)
    _next_report_at: float = field(default=0.0, init=False)
    _folded: int = field(default=0, init=False)

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.failures and now - self._last_at > 2 * self.interval_s:
            # a caller that never sees a success (the API answers 503 and moves on) cannot
            # call recovered(): two quiet intervals end a streak, so the next is new
            self.failures = self._folded = 0
        self._last_at = now
        self.total += 1
        self.failures += 1
        if self.failures == 1:
            self._since = now
            self._next_report_at = now + self.interval_s
            self.log.warning(
                "%s is unreachable (%s); %s, reporting once per %.0fs",
                self.what, reason, self.action, self.interval_s, extra=UNSCOPED,
            )  # fmt: skip
            return
        if now < self._next_report_at:
            self._folded += 1
            return
        self.log.warning(
            "%s is still unreachable after %.0fs (%s); %d failures folded into this report",
            self.what, now - self._since, reason, self._folded + 1, extra=UNSCOPED,
        )  # fmt: skip
        self._folded = 0
        self._next_report_at = now + self.interval_s

    def recovered(self) -> None:
        """Log the end of a failure streak (nothing when there was none)."""
        if not self.failures:
            return
        self.log.info(
            "%s is reachable again after %.1fs and %d failures",
            self.what, self.clock() - self._since, self.failures, extra=UNSCOPED,
        )  # fmt: skip
        self.failures = 0
        self._folded = 0


def store_down(
    outage: FoldedWarning | None, log: logging.Logger, exc: BaseException, what: str
) -> None:
    """A job stopped by a store outage: folded into the worker's outage log when it keeps
    one (ctx["outage"]: one line a minute, not one per job), else one warning of its own."""
    if outage is not None:
        outage.failed(exc)
    else:
        log.warning("%s: store unavailable (%s)", what, exc)
