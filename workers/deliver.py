"""The webhook delivery job: one arq job per event, job id = event id.

Each run is one attempt: sign, POST, log the attempt in the tenant's delivery log.
2xx = delivered. Anything else (a 3xx included: redirects are not followed) is retried
with exponential backoff and jitter (arq Retry) until `webhook_max_attempts`, then
logged as failed. arq's job_try is the attempt number, so an attempt cut short by a
killed worker counts too, and the re-run carries the same webhook-id.

A job that finds the data store down (the queue answered, or it would not run: a
cluster outage, or the first seconds of a single server's) made no attempt at the
receiver: it gives its try back and comes back after `store_retry_s`, so an outage of
any length spends none of the event's attempts and drops no event.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import Any

from arq import Retry
from arq.constants import retry_key_prefix

from rotator.crypto import DecryptError
from rotator.domain.clock import iso_ms
from rotator.store import events, keys, webhooks
from rotator.store.connection import UNAVAILABLE
from rotator.store.webhooks import DeliveryAttempt
from rotator.tally import Tally
from workers import signing
from workers.config import WorkerConfig
from workers.webhook_client import DeliveryFailed, WebhookClient

log = logging.getLogger("workers.deliver")

JOB_NAME = "deliver_event"


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
    JOB_COUNTS): delivered, retrying, failed, withdrawn, deferred (store down)."""
    tally = ctx.get("tally") or Tally()
    try:
        outcome = await _attempt(ctx, tenant, event_id, event_type, body)
    except Retry:
        tally.add("retrying")
        raise
    except UNAVAILABLE as exc:
        tally.add("deferred")
        config: WorkerConfig = ctx["config"]
        outage = ctx.get("outage")
        if outage is not None:
            outage.failed(exc)
        else:
            log.warning("event %s: store unavailable (%s); retrying", event_id, exc)
        # arq counts a try by INCR of its retry key when the job starts (job_try): undo
        # ours, since the receiver was not tried. Best effort: with the queue down too,
        # the job is stuck in its in-progress lock anyway and runs again after it
        with contextlib.suppress(*UNAVAILABLE):
            await ctx["redis"].decr(retry_key_prefix + ctx["job_id"])
        raise Retry(defer=config.store_retry_s * random.uniform(0.5, 1.0)) from None
    tally.add(outcome)
    return outcome


async def _attempt(
    ctx: dict[str, Any], tenant: str, event_id: str, event_type: str, body: bytes
) -> str:
    settings = ctx["settings"]
    config: WorkerConfig = ctx["config"]
    client: WebhookClient = ctx["webhooks"]
    data = ctx["data"]
    attempt = int(ctx.get("job_try") or 1)

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
