"""The webhook delivery job: one arq job per event, job id = event id.

Each run is one attempt: sign, POST, log the attempt in the tenant's delivery log.
2xx = delivered. Anything else (a 3xx included: redirects are not followed) is retried
with exponential backoff and jitter (arq Retry) until `webhook_max_attempts`, then
logged as failed.

The attempt number is counted by us: arq's job_try (public: every run of the job,
an attempt cut short by a killed worker included, whose re-run carries the same
webhook-id) minus this job's deferrals. A job that finds the data store down (the queue
answered, or it would not run: a cluster outage, or the first seconds of a single
server's) made no attempt at the receiver: it counts a deferral (DEFERRALS_KEY_PREFIX,
on the queue, next to the job) and comes back after `store_retry_s`, so an outage of any
length spends none of the event's attempts and drops no event. arq's own cap on runs
(max_tries) is set far above, since deferrals count there: the job decides when to stop.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from typing import Any

from arq import Retry

from rotator.crypto import DecryptError
from rotator.domain.clock import iso_ms
from rotator.store import events, keys, webhooks
from rotator.store.connection import is_unavailable, suppress_unavailable
from rotator.store.webhooks import DeliveryAttempt
from rotator.tally import Tally
from workers import signing
from workers.config import WorkerConfig
from workers.webhook_client import DeliveryFailed, WebhookClient

log = logging.getLogger("workers.deliver")

JOB_NAME = "deliver_event"
DEFERRALS_KEY_PREFIX = "rotator:deferrals:"
"""On the job queue, + job id: runs of the job that found the data store down (a key of
ours, not arq's: arq's keys are its own business)."""
DEFERRALS_TTL_MS = 7 * 86_400_000
"""Longer than a job can live (arq drops a job a day after it was due): never outlives it
by much, even if the run that ends the job cannot delete it."""
MAX_JOB_RUNS = 1_000_000
"""arq's max_tries for the delivery job: deferrals are runs too (one per store_retry_s of
an outage), so arq's cap must never be what ends a delivery (webhook_max_attempts is)."""


class TargetCache:
    """Each tenant's webhook target, kept `ttl_s` per worker process (0 = always read)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, webhooks.WebhookTarget | None]] = {}

    async def get(self, data: Any, keyring: Any, tenant: str) -> webhooks.WebhookTarget | None:
        now = time.monotonic()
        hit = self._entries.get(tenant)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        target = await webhooks.load_target(data, keyring, tenant)
        if self.ttl_s > 0:
            self._entries[tenant] = (now, target)
        return target


def backoff_s(attempt: int, config: WorkerConfig, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: exponential, capped, with jitter in [0.5, 1]x.

    Jitter spreads the retries of many events that failed together (a receiver outage)
    so they do not all come back at the same second.
    """
    ceiling = min(config.backoff_cap_s, config.backoff_base_s * 2 ** (attempt - 1))
    return ceiling * (rng or random).uniform(0.5, 1.0)


async def deliver_event(
    ctx: dict[str, Any], tenant: str, event_id: str, event_type: str, body: bytes
) -> str:
    """One delivery attempt of one event; returns the outcome (kept as the arq result).

    Each outcome is counted in ctx["tally"] for the worker's summary line (rotator/tally.py
    JOB_COUNTS): delivered, retrying, failed, withdrawn, deferred (store down, or the tenant
    already holds its share of this worker's slots)."""
    tally = ctx.get("tally") or Tally()
    config: WorkerConfig = ctx["config"]
    # per worker process (startup puts it in the Worker's ctx; each job's ctx is a copy
    # of that dict, sharing this Counter)
    inflight: Counter[str] = ctx.get("inflight", Counter())
    if inflight[tenant] >= max(1, int(config.max_jobs * config.tenant_share)):
        # this tenant already holds its share of the slots (its receiver is slow or hangs):
        # come back later, without spending an attempt, and leave the slot to other tenants
        tally.add("deferred")
        with suppress_unavailable():
            await count_deferral(ctx["redis"], ctx["job_id"])
        settings = ctx["settings"]
        raise Retry(defer=settings.webhook_timeout_s * random.uniform(0.5, 1.0))
    inflight[tenant] += 1
    try:
        outcome = await _attempt(ctx, tenant, event_id, event_type, body)
    except Retry:
        tally.add("retrying")
        raise
    except Exception as exc:
        # unreachable, or up but refusing (OOM, READONLY, BUSY …): never an attempt, and
        # never the job's failure (arq would not run it again: the event would be lost)
        if not is_unavailable(exc):
            raise
        tally.add("deferred")
        outage = ctx.get("outage")
        if outage is not None:
            outage.failed(exc)
        else:
            log.warning("event %s: store unavailable (%s); retrying", event_id, exc)
        # the receiver was not tried: this run is a deferral, not an attempt. Best effort:
        # with the queue down too, the job is stuck in arq's in-progress lock anyway, and
        # runs again after it (one attempt counted too many, never one too few)
        with suppress_unavailable():
            await count_deferral(ctx["redis"], ctx["job_id"])
        raise Retry(defer=config.store_retry_s * random.uniform(0.5, 1.0)) from None
    finally:
        inflight[tenant] -= 1
        if inflight[tenant] <= 0:
            del inflight[tenant]
    if int(ctx.get("job_try") or 1) > 1:
        # the job is over: its deferral count (if it had any) goes with it
        with suppress_unavailable():
            await ctx["redis"].delete(DEFERRALS_KEY_PREFIX + ctx["job_id"])
    tally.add(outcome)
    return outcome


async def count_deferral(queue: Any, job_id: str) -> None:
    key = DEFERRALS_KEY_PREFIX + job_id
    async with queue.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.pexpire(key, DEFERRALS_TTL_MS)
        await pipe.execute()


async def attempt_number(ctx: dict[str, Any]) -> int:
    """This run's attempt number: runs of the job so far (arq's job_try) minus deferrals.
    The first run reads nothing (no deferral yet): the common case costs no round trip."""
    runs = int(ctx.get("job_try") or 1)
    if runs == 1:
        return 1
    deferrals = int(await ctx["redis"].get(DEFERRALS_KEY_PREFIX + ctx["job_id"]) or 0)
    return max(1, runs - deferrals)


async def _attempt(
    ctx: dict[str, Any], tenant: str, event_id: str, event_type: str, body: bytes
) -> str:
    settings = ctx["settings"]
    config: WorkerConfig = ctx["config"]
    client: WebhookClient = ctx["webhooks"]
    data = ctx["data"]
    attempt = await attempt_number(ctx)

    async def record(outcome: webhooks.Outcome, status: int | None, error: str | None) -> str:
        await webhooks.log_attempt(
            data,
            tenant,
            DeliveryAttempt(
                event_id=event_id,
                type=event_type,
                attempts=attempt,
                status_code=status,
                error=error,
                outcome=outcome,
                updated_at=iso_ms(time.time_ns() // 1_000_000),
            ),
        )
        return outcome

    async def retry_or_fail(status: int | None, error: str) -> str:
        if attempt >= settings.webhook_max_attempts:
            # an operator may have to act (the receiver is down, or refuses): WARNING
            log.warning(
                "webhook event %s of tenant %s failed after %d attempts: %s",
                event_id, tenant, attempt, error,
            )  # fmt: skip
            return await record("failed", status, error)
        log.debug("webhook event %s attempt %d: %s; retrying", event_id, attempt, error)
        await record("retrying", status, error)
        raise Retry(defer=backoff_s(attempt, config))

    if event_type in events.WITHDRAWABLE:
        # race point: a pump may have read and queued this event in the instant between
        # next_key.lua and delivery_refund.lua (the delivery then failed to decrypt); the refund
        # marks such an entry, atomically with taking it back. The refund comes one decrypt
        # (microseconds) after next_key, this check a pump pass, an enqueue and a job pickup
        # (milliseconds) after it. An API process that dies between its two scripts refunds
        # nothing: that delivery stays counted and announced, as if it had succeeded
        _, entry_id = events.parse_event_id(event_id)
        if await events.withdrawn(data, tenant, entry_id):
            log.debug("event %s was withdrawn (its delivery failed); not sent", event_id)
            return "withdrawn"

    try:
        target = await ctx["targets"].get(data, settings.keyring, tenant)
    except DecryptError:
        # retried: an operator may yet configure the master key that opens it
        return await retry_or_fail(None, "webhook secret cannot be decrypted (master key?)")
    if target is None:
        # the tenant removed its webhook after the event was recorded: nowhere to send it.
        # A deleted tenant gets no log entry (that would recreate one of its keys).
        if not await data.exists(keys.tenant(tenant)):
            return "failed"
        return await record("failed", None, "no webhook configured")

    try:
        headers = signing.headers(target.secret, event_id, int(time.time()), body)
        status = await client.post(target.url, headers, body)
    except (signing.BadSecret, DeliveryFailed) as exc:
        return await retry_or_fail(None, str(exc))
    if 200 <= status < 300:
        return await record("delivered", status, None)
    return await retry_or_fail(status, f"HTTP {status}")
