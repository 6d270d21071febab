"""GET /metrics (Prometheus), and the middleware that counts the requests other than
deliveries and reports.

Access: `Authorization: Bearer` ROTATOR_METRICS_TOKEN, or the operator token when that is
unset; 401 otherwise (a scrape config holds the token: Prometheus' `authorization`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

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
    """Litestar middleware: a request counted by route template, method and status. On
    every route but the delivery paths (which time themselves: api/delivery.py) and
    POST /v1/report (which counts itself: rotator.metrics.fold.count_report): both are as
    frequent as deliveries and pay for no layer they do not use."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def measure(scope: Scope, receive: Receive, send: Send) -> None:
            if state.metrics is None or scope["path"] == REPORT_PATH or scope["type"] != "http":
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
