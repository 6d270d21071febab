"""The app factory: `create_app(settings)` builds a Litestar app with its Redis clients."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import ResponseHeader, State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from rotator import __version__
from rotator.api import docs
from rotator.api.body import MAX_BODY_BYTES, ApiRequest
from rotator.api.errors import HANDLERS, routing_headers
from rotator.api.headers import API_HEADERS
from rotator.api.health import ROUTES as HEALTH_ROUTES
from rotator.api.management import ROUTES as MANAGEMENT_ROUTES
from rotator.api.request_id import RequestIdMiddleware
from rotator.api.state import AppState
from rotator.domain.clientip import ClientIpResolver
from rotator.domain.clock import Clock
from rotator.embedded import die_with_parent
from rotator.settings import Settings
from rotator.store import connection
from rotator.tally import Summary, deliveries_line

if TYPE_CHECKING:
    from rotator.metrics.fold import ApiFold

log = logging.getLogger("rotator.api")


def create_app(settings: Settings, *, clock: Clock | None = None) -> Litestar:
    """Build the app. `clock` (tests) replaces both the process clock and Redis TIME."""
    state = AppState(
        settings=settings,
        keyring=settings.keyring,
        client_ip=ClientIpResolver(settings.trusted_networks),
    )
    if clock is not None:
        state.clock = clock
        state.fixed_clock = True

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from rotator.api.proxies import ProxyNames
        from rotator.api.store_watch import StoreWatch
        from rotator.store.delivery import DeliveryStore
        from rotator.store.report import ReportStore
        from rotator.store.token_resolver import TokenResolver

        proxies = ProxyNames(state, settings.trusted_networks, settings.trusted_hosts)
        await proxies.start()  # trusted proxies given by name, resolved now and in the background
        state.redis = connection.connect(settings)
        if settings.metrics and settings.metrics_per_tenant:
            from rotator.metrics.per_tenant import PerTenantDeliveryStore

            store: type[DeliveryStore] = PerTenantDeliveryStore
        else:
            store = DeliveryStore
        state.delivery = await store.open(settings, state.clock, state.fixed_clock)
        state.tokens = TokenResolver(state.delivery.fast, state.clock)
        state.reports = ReportStore(state.delivery, settings)
        # a store emptied under this process is said and marked again (api/store_watch.py)
        watch = app.state["rotator.store_watch"] = StoreWatch(state)
        await watch.start()
        fold = _start_metrics(state) if settings.metrics else None
        # with metrics on, the fold takes the delivery counts and passes them on to the line
        summary_tally = state.tally if fold is None else fold.summary
        summary = Summary(summary_tally, deliveries_line, log, settings.log_summary_s)
        summary.start()
        # everything built so far (modules, routes, the OpenAPI schema: most of the heap)
        # lives as long as the process: out of the collector's reach, a full collection
        # no longer walks it (it paused deliveries for 100+ ms, bench --quick 2026-12-02)
        gc.freeze()
        try:
            yield
        finally:
            if fold is not None:
                await fold.stop()  # before the summary's last line, which reads what it folds
                state.metrics = None
                _metrics_stopped()
            await summary.stop()  # the last partial period's line
            await watch.stop()
            await proxies.stop()
            await state.delivery.close()
            await state.redis.aclose()
            # what this app froze goes back to the collector: a process that builds apps
            # one after another (tests, an embedding host) would keep every one of them
            gc.unfreeze()

    from rotator import console
    from rotator.api.delivery import ROUTES as DELIVERY_ROUTES
    from rotator.api.metrics import ROUTES as METRICS_ROUTES
    from rotator.api.metrics import measured
    from rotator.api.report import ROUTES as REPORT_ROUTES

    # X-Request-ID and the request's scope (logs, audit), and the request counts, on every
    # route but the delivery paths, which set their own id, time themselves and pay for no
    # layer they do not use
    scoped = [*([measured(state)] if settings.metrics else []), RequestIdMiddleware]
    return Litestar(
        route_handlers=[
            *DELIVERY_ROUTES,
            Router(
                "/",
                route_handlers=[
                    *REPORT_ROUTES,
                    *MANAGEMENT_ROUTES,
                    *HEALTH_ROUTES,
                    *(METRICS_ROUTES if settings.metrics else []),
                    docs.static_router(),
                    *console.routes(settings.keyring),
                ],
                middleware=scoped,
            ),
        ],
        template_config=console.template_config(),
        lifespan=[lifespan],
        state=State({"rotator": state}),
        # every HTTP error on a console address is the console's page, not the API's JSON
        exception_handlers={**HANDLERS, **_console_first(console.http_error)},  # type: ignore
        request_class=ApiRequest,
        request_max_body_size=MAX_BODY_BYTES,
        # every Litestar response; /v1/next's own and every error carry them too
        response_headers=[ResponseHeader(name=k, value=v) for k, v in API_HEADERS.items()],
        openapi_config=OpenAPIConfig(
            title="keyrotator",
            version=__version__,
            path=docs.SCHEMA_PATH,
            render_plugins=docs.render_plugins(),
            openapi_router=docs.openapi_router(middleware=scoped),
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="operator token, tenant admin token (kta_…), or for "
                        "/v1/next a client (krc_…) or app (kra_…) token",
                    )
                }
            ),
            security=[{"bearer": []}],
        ),
        logging_config=None,
        debug=False,
    )


def _start_metrics(state: AppState) -> ApiFold:
    """This process's metrics: its in-process counts, folded once a second."""
    from rotator.api.errors import store_failures
    from rotator.metrics import exposition
    from rotator.metrics.fold import ApiFold
    from rotator.metrics.per_tenant import PerTenantDeliveryStore
    from rotator.store.fast.protocol import FLUSH_SIZES

    assert state.delivery is not None
    delivery = state.delivery
    exposition.process_started()
    fold = ApiFold(
        state.tally,
        store_failures=store_failures,
        connect_attempts=lambda: delivery.fast.connect_attempts,
        flush_sizes=FLUSH_SIZES,
    )
    if isinstance(delivery, PerTenantDeliveryStore):
        delivery.per_tenant = fold.per_tenant
    state.metrics = fold
    fold.start()
    return fold


def _metrics_stopped() -> None:
    from rotator.metrics import exposition

    exposition.process_stopped()


def _console_first(
    console_answer: Callable[[Request, HTTPException], Response | None],
) -> dict[type[Exception], Callable[[Request, HTTPException], Response]]:
    """HANDLERS' entries for HTTP errors, with the console answering its own addresses.
    Litestar picks a handler by the exception's class before the layer that set it (the
    app's ValidationException entry wins over the console router's catch-all), and routing's
    404 and 405 come before any router's handlers: so the rule is the app's, once."""

    def console_first(
        api_answer: Callable[[Request, HTTPException], Response],
    ) -> Callable[[Request, HTTPException], Response]:
        def answer(request: Request, exc: HTTPException) -> Response:
            page = console_answer(request, exc)
            if page is None:
                return api_answer(request, exc)
            for name, value in (routing_headers() or {}).items():
                page.headers.setdefault(name, value)  # an error page may carry it already
            return page

        return answer

    return {cls: console_first(api_answer) for cls, api_answer in HANDLERS.items()
            if issubclass(cls, HTTPException)}  # fmt: skip


SERVE_PID_ENV = "_ROTATOR_SERVE_PID"
"""Set by `rotator serve` for its uvicorn worker processes (ROTATOR_WORKERS > 1)."""


def create_app_from_env() -> Litestar:
    """uvicorn --factory entry point for worker processes (settings from ROTATOR_* env)."""
    serve_pid = os.environ.get(SERVE_PID_ENV)
    if serve_pid is not None:
        # one of `serve`'s worker processes: it goes when serve goes, a kill -9 included,
        # which leaves serve no time to stop it (it would hold the port and the restart
        # would be refused); serve gone already (killed while this one still started up,
        # so this process's parent is another now), it goes now
        die_with_parent()
        if str(os.getppid()) != serve_pid:
            raise SystemExit(0)
    return create_app(Settings.from_env())
