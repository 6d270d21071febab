"""GET /healthz (liveness: 200 when Redis answers, 503 otherwise) and GET /readyz
(readiness: can this process serve deliveries now?)."""

from __future__ import annotations

from litestar import Request, get

from rotator.store.connection import ping


@get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> dict[str, str]:
    await ping(request.app.state.rotator.redis)
    return {"status": "ok"}


ROUTES = [healthz]
