"""Usage history: deliveries per key per UTC day, read from the daily usage hashes."""

from __future__ import annotations

from rotator.domain import errors
from rotator.domain.clock import iso_day
from rotator.domain.health import REPORT_CLASSES
from rotator.domain.records import DayUsage, KeyUsage, ServiceUsage
from rotator.store import keys
from rotator.store.connection import Redis, as_str


async def service_usage(
    redis: Redis, tenant: str, slug: str, *, today: int, days: int, retention_days: int
) -> ServiceUsage:
    """Deliveries of the service's keys per UTC day (and reports by status class), newest day
    first, for `days` days
    (1 to the retention: older counters have expired).

    Keys deleted since still count in the day's total, which is the service counter.
    """
    if not 1 <= days <= retention_days:
        raise errors.InvalidField("days", f"must be between 1 and {retention_days}")
    svc = keys.service(tenant, slug)
    ids_raw = await redis.hget(svc, "ids")
    if ids_raw is None and not await redis.exists(svc):
        raise errors.NotFound("unknown service")
    ids = [int(i) for i in (as_str(ids_raw) or "").split(",") if i]
    labels = await redis.hmget(svc, [keys.key_field("l:", i) for i in ids]) if ids else []
    async with redis.pipeline(transaction=False) as pipe:
        for day in range(today, today - days, -1):
            # every field of the day is in one hash, so one HMGET per day
            pipe.hmget(
                keys.usage(tenant, day),
                [
                    keys.usage_field("s:", slug),
                    *(keys.usage_field("rp:", f"{slug}:{c}") for c in REPORT_CLASSES),
                    *(keys.usage_field("k:", i) for i in ids),
                ],
            )
        rows = await pipe.execute()
    names = [(i, as_str(label) or "") for i, label in zip(ids, labels, strict=True)]
    n_classes = len(REPORT_CLASSES)
    return ServiceUsage(
        service=slug,
        days=[
            DayUsage(
                date=iso_day(today - offset),
                total=int(row[0] or 0),
                keys=[
                    KeyUsage(key_id=key_id, label=label, deliveries=int(n or 0))
                    for (key_id, label), n in zip(names, row[1 + n_classes :], strict=True)
                ],
                reports={
                    c: int(n or 0)
                    for c, n in zip(REPORT_CLASSES, row[1 : 1 + n_classes], strict=True)
                },
            )
            for offset, row in enumerate(rows)
        ],
    )


async def services_today(redis: Redis, tenant: str, slugs: list[str], *, today: int) -> list[int]:
    """Today's deliveries of each service in `slugs` (one HMGET: one slot, one round trip)."""
    if not slugs:
        return []
    counts = await redis.hmget(
        keys.usage(tenant, today), [keys.usage_field("s:", slug) for slug in slugs]
    )
    return [int(n or 0) for n in counts]


async def apps_today(redis: Redis, tenant: str, app_ids: list[int], *, today: int) -> list[int]:
    """Today's deliveries made with each app's token (one HMGET), the counters the apps' daily
    limits are checked against."""
    if not app_ids:
        return []
    counts = await redis.hmget(keys.usage(tenant, today), [f"a:{i}" for i in app_ids])
    return [int(n or 0) for n in counts]
