"""GET /metrics (Prometheus), and the middleware that times deliveries and counts the
other requests.

Access: `Authorization: Bearer` ROTATOR_METRICS_TOKEN, or the operator token when that is
unset; 401 otherwise (a scrape config holds the token: Prometheus' `authorization`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from time import perf_counter

from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from rotator.api.auth import app_state, bearer_token
from rotator.api.openapi import UNAUTHORIZED, errors
from rotator.api.state import AppState
from rotator.domain.errors import Unauthorized
from rotator.metrics import exposition, names

DELIVERY_PATHS = frozenset(("/v1/next", "/keyrotator/api/next.php"))
REPORT_PATH = "/v1/report"
"""Counted by its handler (rotator.metrics.fold.count_report), not here: a report is as
frequent as a delivery and must stay as cheap."""


async def require_metrics_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    settings = app_state(connection).settings
    expected = settings.metrics_token or settings.admin_token
    given = bearer_token(connection)
    if (
        expected is None
        or given is None
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise Unauthorized("invalid or missing metrics token")


@get(
    "/metrics",
    summary="Prometheus metrics",
    description="Every API process's metrics in Prometheus' text format (docs/operations.md "
    "lists them). Needs ROTATOR_METRICS_TOKEN, or the operator token when that is unset.",
    guards=[require_metrics_token],
    responses={
        200: ResponseSpec(
            data_container=str, media_type="text/plain", description="Prometheus text format"
        ),
        **errors(UNAUTHORIZED),
    },
    media_type=exposition.CONTENT_TYPE,
)
async def metrics(request: Request) -> Response[bytes]:
    fold = app_state(request).metrics
    if fold is not None:
        fold.fold()  # this process's counts up to now; the others' are ≤ 1 s old
    return Response(exposition.render(), media_type=exposition.CONTENT_TYPE)


def measured(state: AppState) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware: a delivery's time into the in-process histogram; any other
    request counted by route template, method and status. The delivery's branch comes
    first and does the least: it runs at every delivery (1.3–1.9 µs at a load average of
    10 on 2 cores, ≈ 3–4× a quiet machine's: docs/benchmarks.md#metrics)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def measure(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope["path"]
            if path in DELIVERY_PATHS:
                fold = state.metrics
                if fold is None:
                    await app(scope, receive, send)
                    return
                start = perf_counter()
                try:
                    await app(scope, receive, send)
                finally:
                    fold.delivery_latency.observe(perf_counter() - start)
                return
            if state.metrics is None or path == REPORT_PATH or scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 500  # an exception that escaped every handler

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                route = scope.get("path_template") or "unmatched"
                names.management_requests.labels(route, scope["method"], str(status)).inc()

        return measure

    return wrap


ROUTES = [metrics]
