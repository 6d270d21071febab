"""The expiry sweep (arq cron, every minute): tidy time-policy services and notify.

Selection never depends on it (next_key.lua checks expiry on every request); the sweep
marks expired keys (x:N) and records key.expired / service.no_active_keys for services
nobody is requesting. One script call per service, on the service's own hash slot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rotator.folded_log import store_down
from rotator.store.connection import is_unavailable
from rotator.store.sweep import sweep_service, time_services
from rotator.tally import Tally
from rotator.tuning import SWEEP_CHUNK
from workers.config import WorkerConfig

log = logging.getLogger("workers.sweep")


async def sweep_time_services(ctx: dict[str, Any]) -> int:
    """Sweep every registered time service; returns the keys newly marked expired.

    `ctx["clock"]` (tests) fixes the time; otherwise each script reads Redis TIME, the
    clock next_key.lua uses too. A store outage ends the run with one folded warning (not
    a traceback per service); the next minute's run sweeps whatever is due by then.
    Counted in ctx["tally"] (`sweeps`, `expired`) for the worker's summary line.
    """
    tally = ctx.get("tally") or Tally()
    try:
        expired = await _sweep(ctx)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        store_down(ctx.get("outage"), log, exc, "sweep stopped")
        return 0
    tally.add("sweeps")
    if expired:
        tally.add("expired", expired)
    return expired


async def _sweep(ctx: dict[str, Any]) -> int:
    settings = ctx["settings"]
    config: WorkerConfig = ctx["config"]
    data = ctx["data"]
    clock = ctx.get("clock")
    now_ms = clock() if clock is not None else None
    limit = asyncio.Semaphore(config.sweep_concurrency)
    expired = 0

    async def sweep_one(tenant: str, slug: str) -> int:
        async with limit:
            try:
                result = await sweep_service(
                    data, tenant, slug, now_ms=now_ms, events_maxlen=settings.events_maxlen
                )
            except Exception as exc:
                if is_unavailable(exc):
                    raise  # the store, not this service: the whole run stops
                # one broken service must not stop the sweep of the others
                log.exception("sweep of %s/%s failed", tenant, slug)
                return 0
            if result.newly_expired or result.noact_set:
                log.debug(
                    "swept %s/%s: %d key(s) expired%s", tenant, slug, result.newly_expired,
                    ", no active key left" if result.noact_set else "",
                )  # fmt: skip
            return result.newly_expired

    async def sweep_chunk(pairs: list[tuple[str, str]]) -> int:
        # every sweep of the chunk ends before an outage is raised: none is left running
        results = await asyncio.gather(*(sweep_one(*p) for p in pairs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(results)  # type: ignore[arg-type]

    chunk: list[tuple[str, str]] = []
    async for pair in time_services(data):
        chunk.append(pair)
        if len(chunk) >= SWEEP_CHUNK:
            expired += await sweep_chunk(chunk)
            chunk = []
    expired += await sweep_chunk(chunk)
    return expired
