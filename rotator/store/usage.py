"""Usage history: deliveries per key per UTC day, read from the daily usage hashes."""

from __future__ import annotations

import datetime as dt

from rotator.domain import errors
from rotator.domain.clock import DAY_MS
from rotator.store import keys
from rotator.store.connection import Redis, as_str


def day_to_date(day: int) -> str:
    return dt.datetime.fromtimestamp(day * DAY_MS / 1000, dt.UTC).date().isoformat()


async def service_usage(
    redis: Redis, tenant: str, slug: str, *, today: int, days: int
) -> tuple[list[tuple[int, str]], list[tuple[str, int, dict[int, int]]]]:
    """The service's keys [(id, label)] and, newest day first, (date, service total, {key id: n}).

    Keys deleted since still count in the day's total, which is the service counter.
    """
    svc = keys.service(tenant, slug)
    ids_raw = await redis.hget(svc, "ids")
    if ids_raw is None and not await redis.exists(svc):
        raise errors.NotFound("unknown service")
    ids = [int(i) for i in (as_str(ids_raw) or "").split(",") if i]
    labels = await redis.hmget(svc, [f"l:{i}" for i in ids]) if ids else []
    async with redis.pipeline(transaction=False) as pipe:
        for day in range(today, today - days, -1):
            # every field of the day is in one hash, so one HMGET per day
            pipe.hmget(keys.usage(tenant, day), [f"s:{slug}", *(f"k:{i}" for i in ids)])
        rows = await pipe.execute()
    history = []
    for offset, row in enumerate(rows):
        total = int(row[0] or 0)
        per_key = {key_id: int(n or 0) for key_id, n in zip(ids, row[1:], strict=True)}
        history.append((day_to_date(today - offset), total, per_key))
    return [(i, as_str(label) or "") for i, label in zip(ids, labels, strict=True)], history


async def services_today(redis: Redis, tenant: str, slugs: list[str], *, today: int) -> list[int]:
    """Today's deliveries of each service in `slugs` (one HMGET: one slot, one round trip)."""
    if not slugs:
        return []
    counts = await redis.hmget(keys.usage(tenant, today), [f"s:{slug}" for slug in slugs])
    return [int(n or 0) for n in counts]
