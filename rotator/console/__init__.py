"""The web console at /app (tenants) and /app/operator (the operator): server-rendered
pages served by the API process itself.

`routes(keyring)` gives the console's router; `template_config()` the Jinja2 templating
it needs. Its stylesheet, script and the vendored htmx are package files served at
/static with the documentation's (rotator/api/docs.py). Everything console-specific
(CSRF, the page headers, the HTML error pages, htmx requests) is set on the console's
router only, so the JSON API and the delivery hot path run exactly as without it.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.middleware import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from litestar_htmx import HTMXRequest

from rotator.api.body import ApiRequest
from rotator.console.activity import ActivityPage, OperatorActivityPage
from rotator.console.apps import AppPages
from rotator.console.imports import ImportPage
from rotator.console.operator import OperatorPages
from rotator.console.pages import EXCEPTION_HANDLERS
from rotator.console.pages import http_error as http_error  # for the app
from rotator.console.security import (
    SameOriginCSRFMiddleware,
    csrf_config,
    page_headers_middleware,
)
from rotator.console.services import ServicePages
from rotator.console.signin import OperatorSignInPages, SignInPages
from rotator.console.start import StartPage
from rotator.console.tenant_settings import SettingsPages
from rotator.crypto import KeyRing

TEMPLATES = Path(__file__).parent / "templates"


class ConsoleRequest(HTMXRequest, ApiRequest):
    """htmx's request, reading a form as the API reads a body: UTF-8, or refused (400)."""


def _utc(instant: str) -> str:
    """A record's RFC 3339 time (`2026-03-01T12:00:00.000Z`) as `2026-03-01 12:00` UTC."""
    return instant[:16].replace("T", " ")


def _engine_setup(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["utc"] = _utc


def template_config() -> TemplateConfig:
    return TemplateConfig(
        directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_engine_setup
    )


def routes(keyring: KeyRing) -> list:
    pages = Router(
        path="/",
        route_handlers=[
            SignInPages,
            ServicePages,
            ImportPage,
            AppPages,
            SettingsPages,
            StartPage,
            OperatorSignInPages,
            OperatorPages,
            ActivityPage,
            OperatorActivityPage,
        ],
        # the last middleware is the outermost: page headers wrap every response, CSRF's too
        middleware=[
            DefineMiddleware(SameOriginCSRFMiddleware, config=csrf_config(keyring)),
            page_headers_middleware,
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_class=ConsoleRequest,
        include_in_schema=False,
    )
    return [pages]
