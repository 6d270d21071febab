"""The expiry sweep's Redis I/O: the registry of time-policy services, one script per service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from rotator.store import evalsha, keys, scripts
from rotator.store.connection import Redis, as_str


class SweepResult(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    """'ok', 'missing' (service deleted) or 'not_time' (policy changed)."""
    newly_expired: int
    """Keys marked expired (x:N) by this sweep; key.expired recorded for each if subscribed."""
    noact_set: bool
    """The service was found without an active unexpired key for the first time this episode."""


async def time_services(redis: Redis) -> AsyncIterator[tuple[str, str]]:
    """(tenant, slug) of every registered time-policy service (SSCAN of kr:time_services)."""
    async for member in redis.sscan_iter(keys.TIME_SERVICES, count=500):
        tenant, sep, slug = (as_str(member) or "").partition(":")
        if sep and tenant and slug:
            yield tenant, slug


async def sweep_service(
    redis: Redis, tenant: str, slug: str, *, now_ms: int | None, events_maxlen: int
) -> SweepResult:
    """Run scripts/lua/sweep_service.lua; `now_ms` None = the server's clock (Redis TIME)."""
    status, expired, noact = await evalsha.run(
        redis,
        scripts.load("sweep_service"),
        [keys.tenant(tenant), keys.service(tenant, slug), keys.events(tenant)],
        ["" if now_ms is None else now_ms, events_maxlen, slug],
    )
    return SweepResult(
        status=as_str(status) or "", newly_expired=int(expired), noact_set=bool(noact)
    )
