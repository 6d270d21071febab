"""Errors to HTTP, in one table (HANDLERS, at the end). Bodies are always
`{"error": "<message>"}`, plus `"field"` when one input field is to blame.

Besides the domain errors, the table maps what redis-py raises when the store is
unreachable or too slow to `503 store unavailable`, for every route at once: no store
function or handler has to remember it.
"""

from __future__ import annotations

import logging
import re

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from redis.exceptions import ClusterDownError, RedisClusterException, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rotator.api.body import MAX_BODY_BYTES
from rotator.api.headers import API_HEADERS
from rotator.domain import errors as e
from rotator.folded_log import FoldedWarning
from rotator.request_scope import current, new_request_id
from rotator.store import refusals
from rotator.store.connection import is_unavailable

log = logging.getLogger("rotator.api")

STATUS: dict[type[e.RotatorError], int] = {
    e.MissingParams: 400,
    e.InvalidToken: 403,
    e.IpNotAllowed: 403,
    e.UnknownService: 404,
    e.DailyLimitReached: 429,
    e.DemoRateLimited: 429,
    e.RateLimitReached: 429,
    e.NoActiveKeys: 503,
    e.KeyDecryptFailed: 500,
    e.StoreUnavailable: 503,
    refusals.StoreRefused: 503,
    e.Unauthorized: 401,
    e.SigninThrottled: 429,
    e.NotFound: 404,
    e.Conflict: 409,
    e.FieldConflict: 409,
    e.TenantSuspended: 403,
    e.InvalidField: 400,
    e.InvalidEntry: 400,
    e.InvalidRows: 400,
    # not 503 and its Retry-After, even when the store failed: sent again, the import is
    # refused row by row until what remains (the message says what) is deleted
    e.ImportIncomplete: 500,
    e.InvalidBody: 400,
}

_encode = msgspec.json.Encoder().encode
_JSON = "application/json"

STORE_RETRY_AFTER_S = 1
"""`503 store unavailable` carries `Retry-After: 1`: the store is expected back, send the
request again. The client retries, not the proxy: nginx cannot tell this 503 from `no
active keys`, which is final, and another replica uses the same store (deploy/nginx.conf,
docs/operations.md). A delivery answered this way was not counted, unless the store was
slow rather than down: a script that ran past ROTATOR_REDIS_TIMEOUT_MS counted."""
_RETRY_STORE = {"Retry-After": str(STORE_RETRY_AFTER_S)}


def error_response(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    """Every error body goes out here, with the API's response headers (api/headers.py)."""
    headers = {**API_HEADERS, **headers} if headers else API_HEADERS
    return Response(_encode(body), status_code=status, media_type=_JSON, headers=headers)


def rotator_error(_: Request, exc: e.RotatorError) -> Response:
    status = STATUS.get(type(exc), 500)
    body: dict = {"error": exc.message}
    headers = None
    if isinstance(exc, e.InvalidField | e.FieldConflict):
        body["field"] = exc.field
    if isinstance(exc, e.InvalidEntry):
        body["index"] = exc.index
    if isinstance(exc, e.InvalidRows):
        body["rows"] = [{"row": p.row, "field": p.field, "problem": p.problem}
                        for p in exc.problems]  # fmt: skip
    if isinstance(exc, e.DailyLimitReached | e.RateLimitReached):
        body["limit"] = exc.limit
        body["retry_after"] = exc.retry_after_s
    if isinstance(
        exc, e.DemoRateLimited | e.DailyLimitReached | e.RateLimitReached | e.SigninThrottled
    ):
        headers = {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, e.NoActiveKeys) and exc.retry_after_s is not None:
        # every key is cooling down: the first recovers then (key health); the body stays
        # the contract's {"error": "no active keys"}
        headers = {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, e.StoreUnavailable):
        store_outage(exc)
        headers = _RETRY_STORE
    return error_response(status, body, headers)


def store_error(request: Request, exc: Exception) -> Response:
    """redis-py's connection, timeout and cluster-down errors (and OSError), and a store's
    refusals (OOM, READONLY, BUSY …: rotator/store/refusals.py): 503."""
    if not is_unavailable(exc):  # e.g. a RedisClusterException for a programming error
        return unexpected(request, exc)
    code = refusals.code_of(exc)
    # a refusal's message may hold a pipeline's command line (its arguments): the code only
    store_outage(exc if code is None else refusals.StoreRefused(code))
    return error_response(503, {"error": e.StoreUnavailable.message}, _RETRY_STORE)


_outage_log = FoldedWarning(log, "the store", 60.0, action="answering 503")
"""Thousands of 503s a second during an outage make one log line a minute, as the worker's;
the recovery line comes from the store watch (api/store_watch.py), which reads the store
every few seconds: a 503 path never sees a success."""


_refusal_log = FoldedWarning(log, "the store", 60.0, action="answering 503")
"""A store refusing (OOM, READONLY, BUSY …) still answers the store watch's reads, which
would end the outage's streak every few seconds: its own streak ends after two quiet
intervals (rotator/folded_log.py)."""


def store_failures() -> int:
    """Requests this process answered `503 store unavailable` so far (a metric)."""
    return _outage_log.total + _refusal_log.total


def store_outage(exc: BaseException) -> None:
    """Log (folded) a 503: this table's, and the delivery route's own answers."""
    (_refusal_log if isinstance(exc, refusals.StoreRefused) else _outage_log).failed(exc)


def store_answers() -> None:
    """The store answered this process again: the outage's recovery line (once)."""
    _outage_log.recovered()


_NAMED_FIELD = re.compile(r"field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"Missing required (\w+) parameter '([^']+)'")
"""Litestar's words for a parameter left out (no `extra` names it)."""
_ENTRY = re.compile(r"(\w+)\[(\d+)\](?:\.(\w+))?")


def validation_error(_: Request, exc: ValidationException) -> Response:
    """Litestar's body/query validation: 400 naming the first bad field."""
    field = None
    problem = str(exc.detail)
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra and isinstance(extra[0], dict):
        key = str(extra[0].get("key") or "").removeprefix("$.")
        problem = str(extra[0].get("message") or problem).strip()  # msgspec's may end in " "
        # a missing or unknown body field is reported against the whole body: name the field
        named = _NAMED_FIELD.search(problem) if key in ("", "data") else None
        field = named.group(1) if named else (key or None)
    elif missing := _MISSING_PARAMETER.match(problem):
        field, problem = missing.group(2), f"missing required {missing.group(1)} parameter"
    if field == "data":
        # Litestar's name for the body as a whole, which means nothing to a client
        if problem == "'data'":  # no body at all
            problem = "missing: send a JSON object"
        return error_response(400, {"error": f"request body: {problem}"})
    body: dict = {"error": f"{field}: {problem}" if field else f"invalid request: {problem}"}
    entry = _ENTRY.fullmatch(field) if field else None
    if entry and entry.group(1) == "rows":
        # an import's rows are a file's rows: named as the store's refusals name them,
        # counted from 1 (POST /v1/import), whatever found the problem
        named = _NAMED_FIELD.search(problem)
        row = e.RowProblem(
            row=int(entry.group(2)) + 1,
            field=entry.group(3) or (named.group(1) if named else "row"),
            problem=problem,
        )
        return rotator_error(_, e.InvalidRows([row]))
    if entry:
        # a field of one entry of a list (a bulk add's keys[3].secret): named as the store
        # names it, the field and the entry's index
        named = _NAMED_FIELD.search(problem)
        body["field"] = entry.group(3) or (named.group(1) if named else entry.group(1))
        body["index"] = int(entry.group(2))
    elif field:
        body["field"] = field
    return error_response(400, body)


def routing_headers(headers: dict[str, str] | None = None) -> dict[str, str] | None:
    """A 404 or 405 Litestar's routing answered before any route's middleware saw the
    request: none will stamp its X-Request-ID, so it is stamped here."""
    if current() is not None:
        return headers
    return {**(headers or {}), "X-Request-ID": new_request_id()}


def http_error(_: Request, exc: HTTPException) -> Response:
    headers = routing_headers(exc.headers)
    return error_response(exc.status_code, {"error": str(exc.detail)}, headers)


def not_found(_: Request, exc: NotFoundException) -> Response:
    return error_response(404, {"error": "not found"}, routing_headers())


def too_large(_: Request, exc: RequestEntityTooLarge) -> Response:
    return error_response(413, {"error": f"request body larger than {MAX_BODY_BYTES} bytes"})


def unexpected(_: Request, exc: Exception) -> Response:
    # the traceback goes to the log, never to the client; messages may hold input, so log the type
    log.exception("unhandled %s", type(exc).__name__)
    return error_response(500, {"error": "internal error"})


HANDLERS = {
    e.RotatorError: rotator_error,
    ValidationException: validation_error,
    NotFoundException: not_found,
    RequestEntityTooLarge: too_large,
    HTTPException: http_error,
    RedisConnectionError: store_error,
    RedisTimeoutError: store_error,
    ClusterDownError: store_error,
    RedisClusterException: store_error,
    OSError: store_error,
    ResponseError: store_error,
    Exception: unexpected,
}
"""Litestar picks the entry of the first class in the exception's MRO."""
