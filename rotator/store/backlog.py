"""How far behind the worker is: the job queue's length and the oldest event not yet pumped.

Read by the worker's metrics every few seconds, never on a request path. Single-key
commands only (the data store may be a cluster); O(tenants with a webhook) commands.
"""

from __future__ import annotations

from arq.constants import default_queue_name
from redis.exceptions import ResponseError

from rotator.store import keys
from rotator.store.connection import Redis
from rotator.store.events import GROUP


async def queue_depth(queue: Redis) -> int:
    """Webhook jobs waiting in arq's queue (due now or later, retries included)."""
    return int(await queue.zcard(default_queue_name))


async def oldest_unpumped_ms(redis: Redis) -> int | None:
    """The creation time (ms) of the oldest event recorded for a webhook but not yet handed
    to a job: read by no pump yet, or read and not acknowledged. None: there is none."""
    oldest: int | None = None
    for raw in await redis.smembers(keys.WEBHOOK_TENANTS):
        stream = keys.events(raw.decode() if isinstance(raw, bytes) else raw)
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            continue
        group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
        candidates: list[str] = []
        if group is not None and int(group.get("pending") or 0):
            summary = await redis.xpending(stream, GROUP)
            if summary and summary.get("min"):
                candidates.append(_text(summary["min"]))
        # the first entry after the group's read position: recorded, not read by any pump
        # (no group yet: no pump has looked at this stream, every entry waits)
        start = "-" if group is None else "(" + _text(group["last-delivered-id"])
        after = await redis.xrange(stream, min=start, count=1)
        if after:
            candidates.append(_text(after[0][0]))
        for entry_id in candidates:
            created = int(entry_id.split("-", 1)[0])
            oldest = created if oldest is None else min(oldest, created)
    return oldest


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
