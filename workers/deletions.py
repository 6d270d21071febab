"""Finishing tenant deletions (arq cron, every minute): every tenant in
kr:deleting_tenants has its remaining keys removed, and a deletion becomes final once a
pass that began a minute after it found nothing left (rotator/store/tenant_deletion.py).

A deletion interrupted anywhere (the API answered 202, a `rotator tenant delete` was
stopped, a worker was killed) is taken up again from its first step by the next run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rotator.domain.clock import system_clock
from rotator.folded_log import store_down
from rotator.store import tenant_deletion
from rotator.store.connection import Durability, is_unavailable
from rotator.tuning import DELETION_STOP_BEFORE_S
from workers.config import WorkerConfig

log = logging.getLogger("workers.deletions")


async def finish_tenant_deletions(ctx: dict[str, Any]) -> int:
    """Work on every recorded deletion, oldest first, within the job's bound; returns the
    keys removed. `ctx["clock"]` (tests) fixes the time."""
    config: WorkerConfig = ctx["config"]
    data = ctx["data"]
    durability = ctx.setdefault("durability", Durability())
    clock = ctx.get("clock") or system_clock
    budget_s = max(config.sweep_timeout_s - DELETION_STOP_BEFORE_S, config.sweep_timeout_s / 2)
    deadline = time.monotonic() + budget_s

    def out_of_time() -> bool:
        return time.monotonic() >= deadline

    removed = 0
    try:
        for deletion in await tenant_deletion.pending(data):
            if out_of_time():
                break
            done = await tenant_deletion.finish(
                data, durability, deletion, now_ms=clock(), stop=out_of_time
            )
            removed += done.keys_removed
            if done.keys_removed or done.state == "deleting":
                log.info(
                    "tenant %s: %d keys removed%s", deletion.tenant, done.keys_removed,
                    "" if done.state == "deleted" else ", more to come",
                )  # fmt: skip
            if await tenant_deletion.is_final(data, deletion.tenant):
                log.info("tenant %s deleted", deletion.tenant)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # the next minute's run takes every deletion up again where it is
        store_down(ctx.get("outage"), log, exc, "tenant deletions stopped")
    return removed
