"""What one process did since its last summary line, and the task that logs that line.

The API counts deliveries by outcome, the worker its jobs; once per
ROTATOR_LOG_SUMMARY_S (60 s) each process logs one INFO line of its counts (none for a
period with nothing to count), and a last one for the partial period when it stops.

Counting costs the hot path one attribute increment per delivery: plain ints, no lock.
None is needed: a process's counts are touched only by its event loop (uvicorn workers
are processes, each with its own Tally), and `+=` on an int never yields to another task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from rotator.cancel import Background


class Tally:
    """Counts by name since the last take(). `ok` is an attribute of its own: the delivery
    handler increments it on every 200, and an attribute beats a dict lookup there."""

    __slots__ = ("counts", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def take(self) -> dict[str, int]:
        """The counts (`ok` among them when non-zero) since the last take; starts over."""
        taken, self.counts = self.counts, {}
        if self.ok:
            taken = {"ok": self.ok, **taken}
            self.ok = 0
        return taken


def deliveries_line(counts: dict[str, int], period_s: float) -> str | None:
    """`deliveries in the last 60s: 1234 (ok 1200, service daily limit reached 30, ...)`;
    the outcomes are the answers' own words (their `error` string), most frequent first
    after ok. None when nothing was asked."""
    total = sum(counts.values())
    if not total:
        return None
    ok = counts.get("ok", 0)
    others = sorted(((n, name) for name, n in counts.items() if name != "ok"), reverse=True)
    parts = [f"ok {ok}", *(f"{name} {n}" for n, name in others)]
    return f"deliveries in the last {period_s:.0f}s: {total} ({', '.join(parts)})"


JOB_COUNTS = ("delivered", "retrying", "failed", "withdrawn", "deferred")
"""A webhook job's outcomes: sent (2xx); will be tried again; failed for good; not sent,
its delivery was refunded; not tried, the store was down (the try is given back)."""


def jobs_line(counts: dict[str, int], period_s: float) -> str | None:
    """`jobs in the last 60s: webhooks 120 delivered, 3 retrying, 1 failed; 124 events
    pumped; 1 sweep, 2 keys expired`; a rare outcome only when it happened. None when
    nothing happened."""
    if not any(counts.values()):
        return None
    webhooks = [f"{counts.get(name, 0)} {name}" for name in JOB_COUNTS[:3]]
    webhooks += [f"{counts[name]} {name}" for name in JOB_COUNTS[3:] if counts.get(name)]
    return (
        f"jobs in the last {period_s:.0f}s: webhooks {', '.join(webhooks)}; "
        f"{_n(counts.get('pumped', 0), 'event')} pumped; {_n(counts.get('sweeps', 0), 'sweep')}, "
        f"{_n(counts.get('expired', 0), 'key')} expired"
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(eq=False)
class Summary(Background):
    """Logs `line(tally.take(), seconds since the last line)` every `interval_s`, and once
    more at stop() for the partial period. interval_s <= 0: never (stop() still flushes)."""

    tally: Tally
    line: Callable[[dict[str, int], float], str | None]
    log: logging.Logger
    interval_s: float
    _: KW_ONLY
    clock: Callable[[], float] = time.monotonic
    _since: float = field(init=False)

    def __post_init__(self) -> None:
        self._since = self.clock()

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self.launch("log-summary")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.report()

    def report(self) -> None:
        now = self.clock()
        text = self.line(self.tally.take(), now - self._since)
        self._since = now
        if text is not None:
            self.log.info(text)

    async def stop(self) -> None:
        await super().stop()
        self.report()
