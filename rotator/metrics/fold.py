"""Once a second, each API process moves what it counted in plain ints into the metrics.

The delivery path counts its outcomes in `AppState.tally` (for the summary log line) and
its timings in Buckets; the store client counts its write batches and connects. Reading
those here, off the hot path, is what keeps a delivery's metrics cost near zero
(rotator/metrics/__init__.py has the figures). A scrape folds its own process first, so
it is exact for that process and at most FOLD_INTERVAL_S late for the others.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from rotator.cancel import Background
from rotator.domain.errors import RotatorError
from rotator.metrics import names
from rotator.metrics.buckets import LATENCY_BOUNDS_S, Buckets
from rotator.tally import Tally

log = logging.getLogger("rotator.metrics")

FOLD_INTERVAL_S = 1.0
_HTTP_STATUS = re.compile(r"HTTP [1-5][0-9][0-9]")


class ApiFold(Background):
    """One API process's in-process counts and the task that folds them into the metrics.

    `summary` receives every delivery outcome folded, so the summary log line (which
    reads it) says what it said before metrics existed."""

    def __init__(
        self,
        tally: Tally,
        *,
        store_failures: Callable[[], int],
        connect_attempts: Callable[[], int],
        flush_sizes: list[int],
    ) -> None:
        self.tally = tally
        self.summary = Tally()
        self.per_tenant: dict[tuple[str, str], int] = {}
        """Deliveries by (tenant, outcome): filled only with ROTATOR_METRICS_PER_TENANT=1."""
        self.reports: dict[int, int] = {}
        """Reports by the provider status reported (count_report), since the last fold."""
        self.delivery_latency = Buckets(LATENCY_BOUNDS_S)
        self.round_trip = Buckets(LATENCY_BOUNDS_S)
        self._store_failures = store_failures
        self._connect_attempts = connect_attempts
        self._flush_sizes = flush_sizes
        self._seen_flushes = list(flush_sizes)
        self._seen_failures = store_failures()
        self._seen_connects = 1  # the first connect is not a reconnect

    def start(self) -> None:
        names.api_processes.set(1)
        self.launch("metrics-fold")

    async def stop(self) -> None:
        await super().stop()
        self.fold()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FOLD_INTERVAL_S)
            try:
                self.fold()
            except Exception:  # the metrics' files (a full disk): said, and tried again
                log.exception("metrics: folding this process's counts failed")

    def fold(self) -> None:
        """Move everything counted since the last fold into the metrics."""
        counts = self.tally.take()
        for outcome, n in counts.items():
            names.deliveries.labels(outcome_label(outcome)).inc(n)
            self.summary.add(outcome, n)
        if self.per_tenant:
            # copied, then cleared in place: the delivery store holds this very dict, and
            # nothing runs between these lines (no await), so no count is lost
            per_tenant = dict(self.per_tenant)
            self.per_tenant.clear()
            for (tenant, outcome), n in per_tenant.items():
                names.tenant_deliveries.labels(tenant, outcome_label(outcome)).inc(n)
        reports, self.reports = self.reports, {}
        for status, n in reports.items():
            names.reports.labels(status_class(status)).inc(n)
        _fold_buckets("rotator_delivery_duration_seconds", self.delivery_latency)
        _fold_buckets("rotator_store_round_trip_seconds", self.round_trip)
        self._fold_flushes()
        failures = self._store_failures()
        if failures > self._seen_failures:
            names.store_errors.inc(failures - self._seen_failures)
        self._seen_failures = failures
        connects = self._connect_attempts()
        if connects > self._seen_connects:
            names.store_reconnects.inc(connects - self._seen_connects)
            self._seen_connects = connects

    def _fold_flushes(self) -> None:
        # a module-level list the store client increments (rotator/store/fast/protocol.py)
        sizes, seen = list(self._flush_sizes), self._seen_flushes
        self._seen_flushes = sizes
        raw = names.raw["rotator_store_write_batch_size"]
        total = 0
        for size, (now, before) in enumerate(zip(sizes, seen, strict=True)):
            if now > before and size:
                bucket = repr(min(float(size), names.BATCH_BOUNDS[-1]))
                raw.labels(bucket).inc(now - before)
                total += size * (now - before)
        if total:
            raw.labels("sum").inc(total)


def count_report(fold: ApiFold | None, status: int) -> None:
    """POST /v1/report's count (its handler calls this with the reported provider status
    and `AppState.metrics`): one dict increment, folded with the rest; nothing when
    metrics are off."""
    if fold is not None:
        fold.reports[status] = fold.reports.get(status, 0) + 1


def status_class(status: int) -> str:
    if status == 429:
        return "429"
    if 200 <= status < 600:
        return f"{status // 100}xx"
    return "other"


def _fold_buckets(name: str, buckets: Buckets) -> None:
    counts, total = buckets.take()
    if not any(counts):
        return
    raw = names.raw[name]
    for le, n in zip(buckets.labels(), counts, strict=True):
        if n:
            raw.labels(le).inc(n)
    raw.labels("sum").inc(total)


def outcome_label(outcome: str) -> str:
    """The tally's outcome as a label: the error table's messages, `ok` and `HTTP nnn` are
    a bounded set; anything else (an error whose message carries input) is `other`."""
    if outcome == "ok" or outcome in _known_messages() or _HTTP_STATUS.fullmatch(outcome):
        return outcome
    return "other"


_KNOWN: set[str] = set()


def _known_messages() -> set[str]:
    if not _KNOWN:
        todo = [RotatorError]
        while todo:
            cls = todo.pop()
            _KNOWN.add(cls.message)
            todo.extend(cls.__subclasses__())
    return _KNOWN
