"""Worker tunables that are not product settings: batch sizes, intervals, backoff.

Defaults suit production; tests pass tiny intervals instead of sleeping. Everything a
tenant or operator configures lives in rotator.settings.Settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    pump: bool = True
    """Run the event pump loop in this worker process (tests drive it by hand)."""
    pump_batch: int = 200
    """Stream entries read (XREADGROUP COUNT) and enqueued (one script call) at a time."""
    pump_max_batches_per_tenant: int = 20
    """Batches taken from one tenant per pass before moving on (no tenant starves the rest)."""
    pump_parallel_tenants: int = 32
    """Tenants pumped concurrently within a pass (one connection each)."""
    pump_idle_poll_s: float = 0.2
    """Pause after a pass that found nothing: the latency floor of an event."""
    pump_error_pause_s: float = 1.0
    """Pause after a pass that failed (store unreachable), before trying again."""
    claim_idle_ms: int = 30_000
    """A pending entry idle this long belonged to a dead pump: XAUTOCLAIM takes it over."""
    claim_interval_s: float = 10.0
    """How often a pump looks for such entries, per tenant."""
    prune_consumers_idle_ms: int = 86_400_000
    """Consumers idle this long with nothing pending (past worker processes) are removed."""
    prune_interval_s: float = 3600.0
    backoff_base_s: float = 30.0
    """Retry delay after attempt n is base * 2**(n-1), capped, times a jitter in [0.5, 1]."""
    backoff_cap_s: float = 6 * 3600.0
    job_keep_result_s: float = 600.0
    """arq keeps a finished delivery's result this long; within it a re-enqueue collapses."""
    target_cache_s: float = 1.0
    """A tenant's webhook URL and opened secret are reused this long: a burst of events costs
    one read and one decrypt, and a changed URL or secret applies within this delay."""
    max_jobs: int = 100
    """Deliveries in flight at once per worker process."""
    tenant_share: float = 0.25
    """Share of max_jobs one tenant's deliveries may hold at once per worker process (at
    least 1): a tenant whose receiver hangs, with many events queued, must not fill every
    slot and hold up the other tenants' events. A job over it is deferred (not an attempt)."""
    poll_delay_s: float = 0.1
    """How often arq looks at its queue for due jobs."""
    sweep_seconds: frozenset[int] = frozenset({0})
    """Seconds of each minute at which the expiry sweep starts (tests: every second)."""
    sweep_timeout_s: float = 50.0
    """Bound on one run of each minutely job: the expiry sweep, the tenant deletions (which
    stop a few seconds before it and go on in the next run). Note that arq's in-progress
    lock (and so the recovery time of a job whose worker was killed) is the longest
    timeout + 10 s: the minutely jobs share this one so as not to lengthen it."""
    job_timeout_margin_s: float = 5.0
    """Added to webhook_timeout_s for a delivery job's arq timeout (DNS, logging the attempt)."""
    sweep_concurrency: int = 16
    """Services swept at once."""
    http_max_connections: int = 200
    """Open connections to webhook receivers per worker process."""
    reconnect_base_s: float = 0.5
    """After a store outage stops the arq Worker: first pause before the queue is pinged
    again, doubled after each failure (workers/supervisor.py)."""
    reconnect_cap_s: float = 10.0
    """Longest such pause: how late, at most, the worker notices the store is back."""
    reconnect_reset_after_s: float = 60.0
    """A Worker that ran this long before failing starts the backoff over."""
    health_check_interval_s: float = 5.0
    """How often each Worker records that it is alive (arq's health check, on this host's
    key: workers/health.py); the record expires 1 s after the next one is due."""
    outage_report_interval_s: float = 60.0
    """One log line per interval while the store is unreachable, with the count folded."""
    store_retry_s: float = 5.0
    """A delivery job that finds the data store down comes back after about this long
    (jittered), without spending one of the event's attempts."""
