"""The framework's ceiling: a bare Litestar GET /v1/next with no Redis and no crypto.

Served with the same uvicorn flags and worker count as the API, it reads the same
query parameters and returns an encoded struct of the delivery response's shape
(rotator.api.delivery.NextKey), so the ratio API / bare isolates what our hot path
adds on top of Litestar + uvicorn: the store round trip, decrypt, mask and checks.
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, Request, Response, get

from rotator.api.delivery import Limits, Meta, NextKey

_encode = msgspec.json.Encoder().encode
_SECRET = "sk-proj-" + "x" * 48


@get(["/v1/next", "/keyrotator/api/next.php"])
async def next_key(request: Request) -> Response:
    query = request.query_params
    service = query.get("service") or "usage"
    token = query.get("app_token") or query.get("token")
    masked = query.get("mask") == "1"
    body = NextKey(
        service=service,
        key_label="Primary" if token else "",
        key=_SECRET,
        masked=masked,
        policy="usage",
        limits=Limits(max_daily_requests=None),
        meta=Meta(key_id=1, usage_today=42),
    )
    return Response(_encode(body), media_type="application/json")


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    """uvicorn --factory entry point."""
    return Litestar(route_handlers=[next_key, healthz], logging_config=None, debug=False)
