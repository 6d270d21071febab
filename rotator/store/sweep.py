"""The expiry sweep's Redis I/O: the registry of time-policy services, one script per service."""

from __future__ import annotations

from collections.abc import AsyncIterator

from rotator.store import keys
from rotator.store.connection import Redis, as_str
from rotator.store.scripts import services as service_scripts
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.services import SweepResult

__all__ = ["SweepResult", "sweep_service", "time_services"]


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
    return await run(
        Plain(redis),
        service_scripts.sweep_service(tenant, slug, now_ms=now_ms, events_maxlen=events_maxlen),
    )
