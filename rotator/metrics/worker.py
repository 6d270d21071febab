"""The worker's metrics, served by the worker itself on ROTATOR_WORKER_METRICS_PORT.

Why its own port and not the API's /metrics: the worker is a process (in docker
compose, a container) of its own, and shares no directory with the API. A plain
single-process registry is enough: one worker process, one view. The port serves no
token: bind it to a private network (docs/operations.md#metrics-metrics).

Counts come from the worker's tally (the summary line's, rotator/tally.py), folded once
a second as the API's are; the backlog gauges are read from the stores every
BACKLOG_EVERY folds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from rotator.cancel import Background
from rotator.metrics import names  # noqa: F401  (its import turns `_created` series off)
from rotator.store import backlog
from rotator.store.connection import is_unavailable
from rotator.tally import JOB_COUNTS, Tally

log = logging.getLogger("workers.metrics")

WORKER = CollectorRegistry(auto_describe=True)
FOLD_INTERVAL_S = 1.0
BACKLOG_EVERY = 5

webhook_attempts = Counter(
    "rotator_webhook_attempts",
    "webhook jobs by outcome: delivered (2xx), retrying, failed (for good), withdrawn (its "
    "delivery was refunded), deferred (the store was down, or the tenant held its share of "
    "the slots; tried again)",
    ["outcome"],
    registry=WORKER,
)
events_pumped = Counter(
    "rotator_events_pumped", "events handed from the tenants' streams to webhook jobs",
    registry=WORKER,
)  # fmt: skip
sweep_runs = Counter("rotator_sweep_runs", "expiry sweeps run", registry=WORKER)
keys_expired = Counter("rotator_keys_expired", "keys the sweep expired", registry=WORKER)
queue_depth = Gauge(
    "rotator_queue_depth", "webhook jobs waiting in the queue (retries included)", registry=WORKER
)
event_lag = Gauge(
    "rotator_event_lag_seconds",
    "age of the oldest event not yet handed to a webhook job (0: none waiting)",
    registry=WORKER,
)
store_up = Gauge(
    "rotator_worker_store_up",
    "1 when the worker's last backlog read reached the data store and the queue, else 0",
    registry=WORKER,
)
_COUNTERS = {"pumped": events_pumped, "sweeps": sweep_runs, "expired": keys_expired}


class WorkerMetrics(Background):
    """The worker's fold task and HTTP server. `summary` receives what is folded, for the
    summary log line (which reads it)."""

    def __init__(self, tally: Tally, data: Any, queue: Any, now_ms: Any) -> None:
        self.tally = tally
        self.summary = Tally()
        self._data = data
        self._queue = queue
        self._now_ms = now_ms
        self._server: Any = None

    def start(self, host: str, port: int) -> None:
        self._server, _ = start_http_server(port, addr=host, registry=WORKER)
        log.info("worker metrics on http://%s:%d/metrics", host, port)
        self.launch("worker-metrics")

    async def stop(self) -> None:
        await super().stop()
        self.fold()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        await self._data.aclose()
        await self._queue.aclose()

    async def _run(self) -> None:
        n = 0
        while True:
            try:
                self.fold()
                if n % BACKLOG_EVERY == 0:
                    await self.read_backlog()
            except Exception:  # never the worker's jobs: said, and tried again
                log.exception("metrics: reading the worker's counts failed")
            n += 1
            await asyncio.sleep(FOLD_INTERVAL_S)

    def fold(self) -> None:
        for name, count in self.tally.take().items():
            if name in JOB_COUNTS:
                webhook_attempts.labels(name).inc(count)
            elif name in _COUNTERS:
                _COUNTERS[name].inc(count)
            self.summary.add(name, count)

    async def read_backlog(self) -> None:
        try:
            depth = await backlog.queue_depth(self._queue)
            oldest_ms = await backlog.oldest_unpumped_ms(self._data)
        except Exception as exc:
            if not is_unavailable(exc):  # refusing (BUSY, OOM …) counts as down too
                raise
            store_up.set(0)
            return
        store_up.set(1)
        queue_depth.set(depth)
        event_lag.set(0 if oldest_ms is None else max(0, self._now_ms() - oldest_ms) / 1000)
