"""One worker process's arq Worker, kept running through store outages of any length.

arq's Worker polls its queue in a loop that raises as soon as Redis goes away; its
`run()` then closes and returns, and `rotator worker` used to exit with it (webhooks
and the expiry sweep stopped for good). Here an arq Worker runs until a signal stops
it or the store fails it. On failure its event pump stops at once, its jobs in flight
finish in the background (each bounded by its own timeout), and a new Worker starts
as soon as the queue answers a PING again, tried with capped exponential backoff. The
failures of one outage make one log line per `outage_report_interval_s`, saying how
many were folded into it, and one line at recovery (rotator/folded_log.py).

Why nothing is lost across the gap (at least once, as everywhere else):
- stream entries read but not acknowledged stay pending on this process's consumer
  (its name is kept across Workers) and are XAUTOCLAIMed after `claim_idle_ms`; the
  pump acknowledges only entries whose jobs are queued;
- jobs stay in the queue; one cut short keeps arq's in-progress lock until it expires
  (its timeout + 10 s) and then runs again, with the same webhook-id; a job that finds
  the data store down counts a deferral, not an attempt, and comes back later
  (workers/deliver.py);
- the expiry sweep is a cron: ticks missed in the outage are skipped and the next one
  sweeps everything due (the expiry rule is in the script, not in the tick).
Durability is the store's: with `appendfsync everysec` a killed Valkey may lose its
last second of writes, events and queued jobs alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from arq.worker import Worker
from redis.exceptions import WatchError

from rotator.cancel import cancel_and_wait
from rotator.folded_log import FoldedWarning
from rotator.settings import Settings
from rotator.store.address import StoreAddress
from rotator.store.connection import is_unavailable
from rotator.tally import Summary, Tally, jobs_line
from workers.config import WorkerConfig
from workers.pump import consumer_name
from workers.settings import queue_url, shutdown, stop_pump, worker_settings

if TYPE_CHECKING:
    from rotator.metrics.worker import WorkerMetrics

log = logging.getLogger("workers")


def _outage_behind(exc: BaseException) -> BaseException | None:
    """The outage `exc` is (unreachable, or refusing: READONLY after a failover, BUSY …), or
    stands for: redis-py raises a WatchError while handling the ConnectionError of a
    connection that died as arq's job pick-up watched a key."""
    if is_unavailable(exc):
        return exc
    context = exc.__context__
    if isinstance(exc, WatchError) and context is not None and is_unavailable(context):
        return context
    return None


class Supervisor:
    """Runs arq Workers one after the other until `stop()`."""

    def __init__(self, settings: Settings, config: WorkerConfig) -> None:
        self.settings = settings
        self.config = config
        self.queue_url = queue_url(settings)
        self.outage = FoldedWarning(log, "the store", config.outage_report_interval_s)
        self.consumer = consumer_name()
        """One event-pump consumer for the process's life: a Worker after an outage finds
        the entries its predecessor left pending under the same name."""
        self.tally = Tally()
        """Jobs, events and sweeps of every Worker of the process: one summary line a
        `settings.log_summary_s`."""
        self.metrics = _metrics(settings, self.tally, self.queue_url)
        # with metrics on, they take the counts and pass them on to the summary line
        summary_tally = self.tally if self.metrics is None else self.metrics.summary
        self.summary = Summary(summary_tally, jobs_line, log, settings.log_summary_s)
        self.stopping = asyncio.Event()
        self.current: Worker | None = None
        self._draining: set[asyncio.Task[None]] = set()

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        self.stopping.set()
        if self.current is not None:
            # arq's own handler: logs the counts, cancels the jobs in flight (arq retries
            # them) and the Worker's main task
            self.current.handle_sig(signum)

    async def run(self) -> None:
        log.info(
            "worker started: queue %s, data %s, up to %d jobs at once",
            StoreAddress.parse(self.queue_url).display,
            StoreAddress.parse(self.settings.redis_url or "").display
            if self.settings.redis_url
            else "-",
            self.config.max_jobs,
        )
        if self.metrics is not None:
            self.metrics.start(self.settings.host, self.settings.worker_metrics_port)
        self.summary.start()
        try:
            await self._run()
        finally:
            if self.metrics is not None:
                await self.metrics.stop()  # before the last line, which reads what it folds
            await self.summary.stop()  # the last partial period's line
            log.info("worker stopped")

    async def _run(self) -> None:
        delay_s = self.config.reconnect_base_s
        while not self.stopping.is_set():
            try:
                await self._ping_queue()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self.outage.failed(exc)
                await self._pause(delay_s)
                delay_s = min(self.config.reconnect_cap_s, delay_s * 2)
                continue
            self.outage.recovered()
            if self.stopping.is_set():
                break  # the signal came while we were pinging
            loop = asyncio.get_running_loop()
            started = loop.time()
            await self._run_one()
            if loop.time() - started >= self.config.reconnect_reset_after_s:
                delay_s = self.config.reconnect_base_s
            if not self.stopping.is_set():
                await self._pause(delay_s)
                delay_s = min(self.config.reconnect_cap_s, delay_s * 2)
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)

    async def _ping_queue(self) -> None:
        timeout_s = self.settings.redis_timeout_ms / 1000
        # configured from the one reading of the URL, as arq's own pool is (TLS alike)
        client = aioredis.Redis(
            **StoreAddress.parse(self.queue_url).redis_kwargs(),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    async def _pause(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay_s)

    async def _run_one(self) -> None:
        kwargs = worker_settings(
            self.settings, self.config, consumer=self.consumer, outage=self.outage,
            tally=self.tally,
        )  # fmt: skip
        worker = Worker(**kwargs, handle_signals=False)
        self.current = worker
        run = asyncio.ensure_future(worker.async_run())
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                # stop() had arq cancel its main task; once may not be enough (cancel.py)
                await cancel_and_wait(run)
            await run
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise  # not our stop: the process is being torn down
        except Exception as exc:
            if (outage := _outage_behind(exc)) is not None:
                self.outage.failed(outage)
            else:
                # anything else arq raises out of its loop (e.g. a WatchError from its job
                # pick-up when a restarted store lost the watched key) ends this Worker, not
                # the process: logged loudly once, then a new Worker after the usual backoff
                log.exception("the worker loop failed; starting a new one")
        finally:
            stop.cancel()
            if not run.done():  # torn down while it ran
                run.cancel()
            self.current = None
            # the pump stops now (a new Worker's pump takes over its consumer); jobs in
            # flight may still finish, so the rest of the close waits for them
            await stop_pump(worker.ctx)
            if self.stopping.is_set():
                await _close(worker, stopped=True)
            else:
                task = asyncio.create_task(_close(worker), name="close-failed-worker")
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)


async def _close(worker: Worker, *, stopped: bool = False) -> None:
    """Worker.close() minus its assumption that the store answers: wait for the jobs in
    flight, then drop the health key if possible, close our clients and the pool."""
    tasks = list(worker.tasks.values())
    await asyncio.gather(*tasks, return_exceptions=True)
    if stopped and tasks:
        # cancelled by the stop (handle_sig): arq puts them back in the queue
        log.info("stopped; %d job(s) in flight will be retried", len(tasks))
    pool: Any = worker.pool
    if pool is not None:
        await _close_step("dropping its health key", pool.delete(worker.health_check_key))
    await _close_step("closing its clients", shutdown(worker.ctx))
    if pool is not None:
        await _close_step("closing its queue pool", pool.aclose())


async def _close_step(what: str, step: Awaitable[Any]) -> None:
    """Skipped quietly when the store is unavailable (the outage is logged already), logged
    when anything else fails, never raised: the next steps still run, and a close in the
    background leaves no "Task exception was never retrieved"."""
    try:
        await step
    except Exception as exc:
        if not is_unavailable(exc):
            log.exception("closing a worker: %s failed", what)


async def supervise(settings: Settings, config: WorkerConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    supervisor = Supervisor(settings, config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, supervisor.stop, signum)
    try:
        await supervisor.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _metrics(settings: Settings, tally: Tally, queue_url: str) -> WorkerMetrics | None:
    """The worker's metrics (rotator/metrics/worker.py), with ROTATOR_WORKER_METRICS_PORT."""
    if not settings.worker_metrics_port:
        return None
    import os
    import time

    # one process, one registry: not the API's multi-process files (an environment shared
    # with `rotator serve` may name them), read by prometheus-client when first imported
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    from rotator.metrics.worker import WorkerMetrics
    from rotator.store import connection

    timeout_s = settings.redis_timeout_ms / 1000
    queue = aioredis.Redis(
        **StoreAddress.parse(queue_url).redis_kwargs(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return WorkerMetrics(
        tally, connection.connect(settings), queue, lambda: int(time.time() * 1000)
    )
