"""The event pump: per-tenant event streams -> one arq delivery job per event.

Why a long-running loop task (started in every worker's on_startup) and not an arq cron:
cron ticks are at best a second apart and `unique` cron jobs run on one worker only, so
latency would be >= 1 s and one worker would carry the whole stream. The loop polls
continuously (pausing `pump_idle_poll_s` only when a pass found nothing), every worker
runs one, and the consumer group shares entries among them; an error pauses the loop
and it carries on, so a Redis blip does not stop the pump.

Delivery guarantee (at least once), step by step for a batch of entries:
  XREADGROUP (entries now pending on this consumer)
  -> enqueue the jobs (arq's enqueue_job, job id = event id, ENQUEUE_CONCURRENCY at once)
  -> log each entry that cannot be delivered as a failed delivery (malformed, or trimmed away
     by MAXLEN while pending): no event is dropped without a trace the tenant can see
  -> XACK.
A pump killed before the enqueue leaves the entries pending: after `claim_idle_ms` any
pump XAUTOCLAIMs and forwards them. Killed between enqueue and XACK: the reclaimed
entries are enqueued again and collapse onto the existing job ids. Killed after XACK:
the jobs are in the queue and any worker runs them.

Only single-key commands touch the data store (it may be a Redis Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any, NamedTuple

from arq.connections import ArqRedis
from redis.exceptions import ResponseError

from rotator.domain.clock import iso_ms
from rotator.folded_log import FoldedWarning
from rotator.store import webhooks
from rotator.store.connection import Redis, is_unavailable
from rotator.store.events import (
    Entry,
    EventStreams,
    encode_event,
    event_id,
    to_event,
    withdrawn,
)
from rotator.tally import Tally
from workers.config import WorkerConfig
from workers.deliver import JOB_NAME

log = logging.getLogger("workers.pump")

Job = tuple[str, tuple[Any, ...]]
"""(job id, deliver_event args after ctx)."""

TRIMMED = "trimmed from the event stream before it was delivered (ROTATOR_EVENTS_MAXLEN)"


class Undeliverable(NamedTuple):
    """A stream entry no job can deliver, and why (logged as a failed delivery)."""

    entry_id: str
    type: str
    error: str
    trimmed: bool = False


def consumer_name() -> str:
    """Unique per worker process, so a restarted worker never inherits a dead one's entries
    silently (they are reclaimed by idle time instead)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


ENQUEUE_CONCURRENCY = 50
"""enqueue_job calls in flight at once per batch: each holds a queue connection for its
two round trips (WATCH + EXISTS, then MULTI/EXEC); see enqueue_batch for the figures."""


def arq_view(queue: Redis | ArqRedis) -> ArqRedis:
    """The queue client as arq's ArqRedis (what enqueue_job is a method of): a worker's own
    ctx["redis"] as it is, a plain client (tests, the bench) on the same connection pool."""
    if isinstance(queue, ArqRedis):
        return queue
    return ArqRedis(connection_pool=queue.connection_pool)


async def enqueue_batch(queue: Redis | ArqRedis, jobs: list[Job]) -> int:
    """Enqueue deliver_event jobs with arq's public enqueue_job; returns how many were new.

    The job id is the event id: enqueue_job skips an id that is queued, running, or
    finished with its result kept (job_keep_result_s), so an event enqueued twice (a
    pump died before XACK and another reclaimed the entry) is delivered once.

    Cost, measured with bench/webhook_throughput.py on the 2-core VM under other load
    (load average 6-8 for the interleaved runs): the pump alone did 29,000-33,000 events/s
    quiet and 4,400-20,800 loaded with the one-call Lua script this replaces, and
    1,400-3,700 quiet and 900-1,400 loaded with enqueue_job (CPU-bound: a WATCH, three
    round trips and a Job per event; 10, 50 or 200 at a time made no difference). Pump +
    signed delivery with one worker process, interleaved before/after: 76 and 107 events/s
    before, 76 and 63 after: deliveries stay the bottleneck, each worker runs its own pump,
    and arq keeps its job format to itself.
    """
    if not jobs:
        return 0
    arq = arq_view(queue)
    gate = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

    async def enqueue(job_id: str, args: tuple[Any, ...]) -> bool:
        async with gate:
            return await arq.enqueue_job(JOB_NAME, *args, _job_id=job_id) is not None

    # every call runs to its end before the first error is raised: none is left behind
    done = await asyncio.gather(*(enqueue(i, a) for i, a in jobs), return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return sum(bool(result) for result in done)


class EventPump:
    def __init__(
        self,
        data: Redis,
        queue: Redis | ArqRedis,
        config: WorkerConfig,
        *,
        consumer: str | None = None,
        outage: FoldedWarning | None = None,
        tally: Tally | None = None,
    ) -> None:
        self.streams = EventStreams(data)
        self.outage = outage or FoldedWarning(log, "the store", config.outage_report_interval_s)
        """Store failures, folded (a pass fails several times a second in an outage)."""
        self.tally = tally or Tally()
        """Events forwarded (`pumped`), for the worker's summary line."""
        self.queue = arq_view(queue)
        self.config = config
        self.consumer = consumer or consumer_name()
        self._grouped: set[str] = set()
        self._claimed_at: dict[str, float] = {}
        self._pruned_at: dict[str, float] = {}
        self._warned_at: dict[str, float] = {}

    async def run_forever(self) -> None:
        """Pump until cancelled (worker shutdown)."""
        log.debug("event pump %s started", self.consumer)
        while True:
            try:
                moved = await self.pump_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # unreachable or refusing (OOM, READONLY, BUSY …): an outage, folded
                if is_unavailable(exc):
                    self.outage.failed(exc)
                else:
                    log.exception("event pump pass failed; retrying")
                await asyncio.sleep(self.config.pump_error_pause_s)
                continue
            self.outage.recovered()
            if moved:
                self.tally.add("pumped", moved)
            else:
                await asyncio.sleep(self.config.pump_idle_poll_s)

    async def pump_once(self) -> int:
        """One pass over every tenant with a webhook; returns the entries forwarded.

        Tenants are pumped `pump_parallel_tenants` at a time (each is a few round trips),
        and one tenant's failure (say, a key of the wrong type) does not stop the others;
        when every tenant fails, the store is down and the pass raises.
        """
        tenants = await self.streams.webhook_tenants()
        moved, failures = 0, []
        step = self.config.pump_parallel_tenants
        for start in range(0, len(tenants), step):
            chunk = tenants[start : start + step]
            results = await asyncio.gather(
                *(self.pump_tenant(t) for t in chunk), return_exceptions=True
            )
            for tenant, result in zip(chunk, results, strict=True):
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    failures.append((tenant, result))
                else:
                    moved += result
        if failures and len(failures) == len(tenants):
            raise failures[0][1]
        now = time.monotonic()
        for tenant, exc in failures:
            # once a minute per tenant: a pass runs several times a second
            if now - self._warned_at.get(tenant, -1e9) >= 60:
                self._warned_at[tenant] = now
                log.warning("event pump: tenant %s failed: %s: %s", tenant, type(exc).__name__, exc)
        return moved

    async def pump_tenant(self, tenant: str) -> int:
        if tenant not in self._grouped:
            await self.streams.ensure_group(tenant)
            self._grouped.add(tenant)
        now = time.monotonic()
        moved = 0
        if now - self._claimed_at.get(tenant, -1e9) >= self.config.claim_interval_s:
            self._claimed_at[tenant] = now
            moved += await self._reclaim(tenant)
        if now - self._pruned_at.get(tenant, now) >= self.config.prune_interval_s:
            await self.streams.prune_consumers(
                tenant, idle_ms=self.config.prune_consumers_idle_ms, keep=self.consumer
            )
        self._pruned_at.setdefault(tenant, now)
        for _ in range(self.config.pump_max_batches_per_tenant):
            try:
                entries = await self.streams.read_new(tenant, self.consumer, self.config.pump_batch)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # the stream was deleted (and its group with it): recreate on the next pass
                self._grouped.discard(tenant)
                break
            moved += await self._forward(tenant, entries)
            if len(entries) < self.config.pump_batch:
                break
        return moved

    async def _reclaim(self, tenant: str) -> int:
        moved = 0
        for _ in range(self.config.pump_max_batches_per_tenant):
            try:
                entries = await self.streams.claim_stale(
                    tenant, self.consumer, self.config.claim_idle_ms, self.config.pump_batch
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._grouped.discard(tenant)
                break
            if entries:
                log.info("reclaimed %d pending events of tenant %s", len(entries), tenant)
            moved += await self._forward(tenant, entries)
            if len(entries) < self.config.pump_batch:
                break
        return moved

    async def _forward(self, tenant: str, entries: list[Entry]) -> int:
        if not entries:
            return 0
        jobs, undeliverable = jobs_for(tenant, entries)
        await enqueue_batch(self.queue, jobs)
        for entry in undeliverable:
            await self._log_undeliverable(tenant, entry)
        # acknowledged only now that the jobs are queued and the failures logged (a pump that
        # dies before this line leaves them pending: reclaimed, queued again (collapsing on the
        # job ids) and logged again)
        await self.streams.ack(tenant, [entry_id for entry_id, _ in entries])
        return len(entries)

    async def _log_undeliverable(self, tenant: str, entry: Undeliverable) -> None:
        if entry.trimmed and await withdrawn(self.streams.redis, tenant, entry.entry_id):
            return  # taken back on purpose (delivery_refund.lua): not an event any more
        log.warning(
            "event %s of tenant %s cannot be delivered: %s; logged as failed",
            entry.entry_id,
            tenant,
            entry.error,
        )
        now_ms = time.time_ns() // 1_000_000
        await webhooks.log_attempt(
            self.streams.redis,
            tenant,
            webhooks.DeliveryAttempt(
                event_id=event_id(tenant, entry.entry_id),
                type=entry.type,
                attempts=0,
                status_code=None,
                error=entry.error,
                outcome="failed",
                updated_at=iso_ms(now_ms),
            ),
        )


def jobs_for(tenant: str, entries: list[Entry]) -> tuple[list[Job], list[Undeliverable]]:
    """The delivery jobs of stream entries, and the entries that cannot have one: malformed
    (an entry no script of ours writes), or trimmed away (MAXLEN) while pending."""
    jobs: list[Job] = []
    undeliverable: list[Undeliverable] = []
    for entry_id, fields in entries:
        if fields is None:
            undeliverable.append(Undeliverable(entry_id, "unknown", TRIMMED, trimmed=True))
            continue
        try:
            event = to_event(tenant, entry_id, fields)
        except ValueError as exc:
            raw_type = (fields.get(b"type") or b"").decode(errors="replace")
            undeliverable.append(
                Undeliverable(entry_id, raw_type or "unknown", f"malformed event: {exc}")
            )
            continue
        jobs.append((event.id, (tenant, event.id, event.type, encode_event(event))))
    return jobs, undeliverable
