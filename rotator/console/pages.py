"""Rendering console pages, and the console's error pages (one table of exceptions).

Every page is a Jinja2 template under console/templates/. An htmx request for a part of
a page gets that part only (`partial`); everything else gets the whole page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import HTMXTemplate

from rotator.api.body import MAX_BODY_BYTES
from rotator.api.errors import routing_headers
from rotator.console.auth import OPERATOR_PATH, SignInRequired
from rotator.console.forms import FormErrors
from rotator.console.messages import form_errors
from rotator.console.security import CONSOLE_PATH, CSRF_COOKIE, PAGE_HEADERS
from rotator.domain import errors
from rotator.store.connection import UNAVAILABLE, is_unavailable

log = logging.getLogger("rotator.console")

SIGNIN = CONSOLE_PATH + "/signin"
OPERATOR_SIGNIN = OPERATOR_PATH + "/signin"


def page(template: str, *, status: int = 200, **context: Any) -> Template:
    return Template(template_name=template, context=context, status_code=status)


def done_notice(request: Request, notices: Mapping[str, str]) -> str | None:
    """The notice a write's redirect asked for (`?done=saved`), if it is one of `notices`."""
    return notices.get(request.query_params.get("done", ""))


def form_page(
    request: Request,
    template: str,
    notices: Mapping[str, str],
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    """A page holding forms. After a refused submission `context` gives what the user typed
    (`values`) and the refusal (`errors`), so the form comes back as it was filled; else
    both are empty, and the page says what the last write did (`done_notice`)."""
    context.setdefault("values", {})
    context.setdefault("errors", FormErrors())
    context.setdefault("notice", done_notice(request, notices))
    return page(template, status=status, **context)


def refused_form(
    exc: errors.RotatorError, field: str, values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The rest of a page's arguments after a refused submission (see `form_page`): 400,
    the refusal next to its field (`field` when the error names none), in the console's
    words, and the form as the user filled it (`values`; never a secret typed)."""
    return {"status": 400, "errors": form_errors(exc, field), "values": values or {}}


def partial(template: str, **context: Any) -> Template:
    """A fragment for htmx to swap in (no layout around it)."""
    return HTMXTemplate(template_name=template, context=context)


def is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def see_other(request: Request, url: str) -> Response:
    """After a POST: the browser GETs `url` (htmx follows it too, via HX-Redirect)."""
    if is_htmx(request):
        return Response(b"", status_code=200, headers={"HX-Redirect": url})
    return Redirect(url, status_code=HTTP_303_SEE_OTHER)


def _error_page(status: int, title: str, message: str, **headers: str) -> Template:
    response = page("error.html", status=status, title=title, message=message)
    # a refusal raised by a middleware (the CSRF check, reading the form) is answered
    # outside the request-id middleware: stamped here then, like routing's own answers
    response.headers.update({**PAGE_HEADERS, **headers, **(routing_headers() or {})})
    return response


def sign_in_required(request: Request, exc: SignInRequired) -> Response:
    return see_other(request, OPERATOR_SIGNIN if exc.operator else SIGNIN)


def not_found(request: Request, exc: Exception) -> Response:
    return _error_page(404, "Not found", "There is nothing here, or it belongs to someone else.")


def store_unavailable(request: Request, exc: Exception) -> Response:
    return _error_page(
        503,
        "Temporarily unavailable",
        "The data store is not answering right now. Wait a moment, then look before you "
        "send a change again: if the store was slow rather than down, it may have made it.",
        **{"retry-after": "5"},
    )


def csrf_refused(request: Request, exc: PermissionDeniedException) -> Response:
    # a stale CSRF cookie (say, signed before the master key rotated) would refuse every
    # form for good: drop it, so the next page load sets a fresh one
    response = _error_page(
        403,
        "This form has expired",
        "The page you submitted was too old, or came from another site. Go back, reload "
        "the page and try again.",
    )
    response.delete_cookie(CSRF_COOKIE, path=CONSOLE_PATH)
    return response


def rotator_error(request: Request, exc: errors.RotatorError) -> Response:
    if isinstance(exc, errors.NotFound | errors.UnknownService):
        return not_found(request, exc)
    if isinstance(exc, errors.StoreUnavailable):
        return store_unavailable(request, exc)
    if isinstance(exc, errors.Unauthorized):
        return sign_in_required(request, SignInRequired())
    if isinstance(exc, errors.TenantSuspended):
        return _error_page(
            403,
            "Your tenant is suspended",
            "The operator has suspended this tenant: you can look at everything, but "
            "nothing can be changed until the operator resumes it. Nothing was changed.",
        )
    return _error_page(400, "That did not work", exc.message)


def unexpected(request: Request, exc: Exception) -> Response:
    if is_unavailable(exc):
        return store_unavailable(request, exc)
    # the traceback goes to the log, never to the page; messages may hold input: log the type
    log.exception("console: unhandled %s", type(exc).__name__)
    return _error_page(500, "Something went wrong", "The error was logged. Try again.")


EXCEPTION_HANDLERS = {
    # the store's connection errors by class, so an app-wide handler of them (JSON 503)
    # does not win over the console's page
    **{cls: store_unavailable for cls in UNAVAILABLE},
    SignInRequired: sign_in_required,
    NotFoundException: not_found,
    PermissionDeniedException: csrf_refused,
    errors.RotatorError: rotator_error,
    Exception: unexpected,
}


def http_error(request: Request, exc: HTTPException) -> Response | None:
    """Any HTTP error on a console address, whichever layer raised it (routing, a query
    parameter, the body's size or form): the console's page, never the API's JSON. Litestar
    raises most of them before or outside the console router's handlers, and the app's table
    names their classes, so the app asks here first (rotator/api/app.py). None elsewhere."""
    path = request.url.path
    if path != CONSOLE_PATH and not path.startswith(CONSOLE_PATH + "/"):
        return None
    if isinstance(exc, NotFoundException):
        # an address no page answers, including an id that is not a number (/app/apps/abc)
        return not_found(request, exc)
    if exc.status_code >= 500:
        return unexpected(request, exc)
    path = path.rstrip("/")
    visited = request.method == "GET" and path.startswith(CONSOLE_PATH + "/")
    if isinstance(exc, MethodNotAllowedException) and visited:
        # the address bar after a refused form or a page shown once (Enter pressed, the tab
        # restored) GETs an address that only takes a form: the form is one step up the path
        return Redirect(path.rsplit("/", 1)[0], status_code=HTTP_303_SEE_OTHER)
    title, message = _HTTP_ERRORS.get(exc.status_code, _HTTP_ERRORS[400])
    return _error_page(
        exc.status_code, title, message.format(problem=_problem(exc)), **(exc.headers or {})
    )


_HTTP_ERRORS = {
    400: ("That did not work", "This page could not take what was sent ({problem}). Nothing "
          "was changed. Go back and try again."),
    405: ("Not here", "This address does not take that kind of request. Nothing was changed."),
    413: ("Too much at once", f"What was sent is larger than the console takes "
          f"({MAX_BODY_BYTES // 2**20} MiB at most). Nothing was changed."),
}  # fmt: skip


def _problem(exc: HTTPException) -> str:
    """Litestar's words for a refusal: the field and its problem when it names one (a query
    parameter's), else its detail. Neither holds the value sent."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra and isinstance(extra[0], dict) and extra[0].get("key"):
        return f"{extra[0]['key']}: {str(extra[0].get('message', '')).strip()}"
    return str(exc.detail)
