"""GET /healthz (liveness: 200 when Redis answers, 503 otherwise) and GET /readyz
(readiness: can this process serve deliveries now?).

/readyz is for a load balancer's probes, which may come many times a second from every
balancer: its answer is reused for READY_CACHE_MS, and concurrent probes share one check.
"""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Request, Response, route
from litestar.openapi import ResponseSpec

from rotator.api.errors import error_response
from rotator.api.state import AppState
from rotator.store.connection import ping
from rotator.store.readiness import Checks, check, ready

READY_CACHE_MS = 1000
"""On the app's clock (a test's injected one moves it on without sleeping)."""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    checks: Checks
    """store (reachable), scripts (the delivery script in the store's cache), master_key
    (opens the key-ring canary), schema (the store's format is this version's): "ok" or
    what is wrong."""


class NotReady(msgspec.Struct, frozen=True, kw_only=True):
    error: str
    ready: bool
    checks: Checks


PROBE_METHODS = ["GET", "HEAD"]
"""Load balancers probe with either (HAProxy's `option httpchk HEAD /readyz`, for one)."""


@route("/healthz", http_method=PROBE_METHODS, include_in_schema=False)
async def healthz(request: Request) -> dict[str, str]:
    await ping(request.app.state.rotator.redis)
    return {"status": "ok"}


class _Cached:
    """The last check and when it was made; `pending` is the check in flight."""

    def __init__(self) -> None:
        self.checks: Checks | None = None
        self.at = 0
        self.pending: asyncio.Task[Checks] | None = None


@route(
    "/readyz",
    http_method=PROBE_METHODS,
    summary="Can this process serve deliveries now?",
    description="For a load balancer: 200 when the store answers, holds the delivery "
    "script, the master key opens its key-ring canary and its data format is current; "
    "503 saying which check failed. Needs no token; answers are reused for a second.",
    responses={
        200: ResponseSpec(data_container=Readiness, description="ready"),
        503: ResponseSpec(data_container=NotReady, description="not ready, and why"),
    },
    security=[],
)
async def readyz(request: Request) -> Response:
    state: AppState = request.app.state.rotator
    cached: _Cached = request.app.state.setdefault("rotator.readiness", _Cached())
    checks = cached.checks
    if checks is None or not 0 <= state.now_ms() - cached.at < READY_CACHE_MS:
        if cached.pending is None:
            cached.pending = asyncio.ensure_future(_check(state, cached))
        # shielded: a probe that gives up must not cancel the check the others wait for
        checks = await asyncio.shield(cached.pending)
    if ready(checks):
        return Response(msgspec.to_builtins(Readiness(ready=True, checks=checks)))
    wrong = ", ".join(
        f"{name} {value}"
        for name, value in msgspec.structs.asdict(checks).items()
        if value not in ("ok", "not checked")
    )
    body = NotReady(error=f"not ready: {wrong}", ready=False, checks=checks)
    return error_response(503, msgspec.to_builtins(body))


async def _check(state: AppState, cached: _Cached) -> Checks:
    try:
        checks = await check(state.redis, state.keyring)
        cached.checks, cached.at = checks, state.now_ms()
        return checks
    finally:
        cached.pending = None


ROUTES = [healthz, readyz]
