"""The API documentation: /schema (a Swagger UI page), /schema/openapi.json and .yaml.

Litestar's own UI plugins load their scripts from CDNs without integrity checks and
show a blank page without internet; self-hosted and air-gapped deployments are our
users. The page here loads only files the package installs (rotator/static, served
at /static: the vendored Swagger UI and our init script), under a Content-Security-
Policy that allows nothing from another origin and no inline script.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path, PurePath
from typing import Any

from litestar import Request, Router, get, head
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.file_system import BaseLocalFileSystem
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.params import FromPath
from litestar.response.file import ASGIFileResponse
from litestar.static_files import StaticFiles

from rotator.api.headers import NOSNIFF

STATIC_DIR = Path(str(files("rotator") / "static"))
"""Installed with the package (a plain directory in the wheel)."""
STATIC_PATH = "/static"
SCHEMA_PATH = "/schema"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Swagger UI (React) styles elements through the DOM, which CSP allows: checked in
        # headless Chromium with a report-uri, operations expanded, zero violations
        "style-src 'self'",
        # swagger-ui.css draws its icons as data: SVGs
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""On the documentation pages: same origin only, no inline script, never framed."""

STATIC_MAX_AGE_S = 3600
"""The vendored assets change only with the package; an hour spares reloading 1.7 MB."""


class DocsPage(OpenAPIRenderPlugin):
    """The documentation page: fixed HTML naming same-origin files only."""

    def __init__(self) -> None:
        super().__init__(path="/")
        self.html = (STATIC_DIR / "docs" / "index.html").read_bytes()

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return self.html


def openapi_router(middleware: Sequence[Any] = ()) -> Router:
    """Litestar's OpenAPI router, with the policy header on everything it serves (and the
    app's `middleware` for every route but the delivery paths: rotator/api/app.py)."""
    return Router(
        SCHEMA_PATH,
        route_handlers=[],
        middleware=list(middleware),
        include_in_schema=False,
        response_headers=[
            ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY)
        ],
    )


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """/schema/openapi.json, /schema/openapi.yaml and the page at /schema; nothing else."""
    return [JsonRenderPlugin(), YamlRenderPlugin(), DocsPage()]


def static_router() -> Router:
    """The package's static files at /static (vendored UI; the console's later).

    Litestar's StaticFiles resolves paths inside STATIC_DIR (no `..` escape); its
    ready-made router cannot add headers but Cache-Control, hence these two handlers.
    """
    cache_control = CacheControlHeader(max_age=STATIC_MAX_AGE_S)
    static = StaticFiles(
        is_html_mode=False,
        directories=[STATIC_DIR],
        file_system=BaseLocalFileSystem(),
        headers=dict((NOSNIFF, (cache_control.HEADER_NAME, cache_control.to_header()))),
    )

    @get("/{file_path:path}", name="static")
    async def static_file(file_path: FromPath[PurePath]) -> ASGIFileResponse:
        return await static.handle(path=file_path.as_posix(), is_head_response=False)

    @head("/{file_path:path}", name="static/head")
    async def static_head(file_path: FromPath[PurePath]) -> ASGIFileResponse:
        return await static.handle(path=file_path.as_posix(), is_head_response=True)

    return Router(STATIC_PATH, route_handlers=[static_file, static_head], include_in_schema=False)
