"""GET /healthz: 200 when Redis answers, 503 otherwise."""

from __future__ import annotations

from litestar import Request, get

from rotator.store.connection import ping


@get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> dict[str, str]:
    await ping(request.app.state.rotator.redis)
    return {"status": "ok"}
