"""The two floors /v1/next is measured against, served like the API (same server, flags, workers).

- The routing floor: a Litestar app whose /v1/next is an `@asgi` route handler sending a
  fixed body of the delivery's size. What Litestar's routing and the server cost with no
  Request, no parameters, no handler machinery, no work: the most any route of a
  Litestar app can do.
- The raw ASGI callable: the same fixed answer with no framework at all, for every path:
  what the server itself (uvicorn or granian, httptools, uvloop) costs.

The bare `@get` handler (bench/bare_app.py) sits above both: Litestar's per-request
machinery with no work. Issue #14's goals are ratios to these (bench/analysis.py).
"""

from __future__ import annotations

from litestar import Litestar, asgi, get
from litestar.types import ASGIApp, Receive, Scope, Send

# a 200 the size of a real delivery's (service, label, a 56-character key, limits, meta)
BODY = (
    b'{"service":"usage","key_label":"Primary","key":"sk-proj-'
    + b"x" * 48
    + b'","masked":false,"policy":"usage","limits":{"max_daily_requests":null},'
    b'"meta":{"key_id":1,"usage_today":42}}'
)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(BODY)),
    ],
}
_BODY = {"type": "http.response.body", "body": BODY}


async def fixed(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_START)
    await send(_BODY)


@asgi(["/v1/next", "/keyrotator/api/next.php"], copy_scope=False)
async def floor_next(scope: Scope, receive: Receive, send: Send) -> None:
    await fixed(scope, receive, send)


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_floor_app() -> Litestar:
    """uvicorn --factory entry point: the routing floor."""
    return Litestar(route_handlers=[floor_next, healthz], logging_config=None, debug=False)


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Every HTTP request gets the fixed answer (/healthz too); lifespan is acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await fixed(scope, receive, send)


def create_raw_app() -> ASGIApp:
    """uvicorn --factory entry point: the raw ASGI callable."""
    return raw_app
