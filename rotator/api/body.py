"""Request bodies: a size cap, a nesting cap checked before anything decodes the JSON, and
UTF-8 or nothing (a JSON body's rule, which the console's forms share).

Both caps stand between a client and the decoder: a body is read only after the
route's guard has authenticated the caller (rotator/api/auth.py), never beyond
MAX_BODY_BYTES, and never decoded when its arrays and objects nest deeper than
MAX_JSON_DEPTH (msgspec's decoder recurses: a 1000-deep body would raise
RecursionError, a 500). Every refusal is a domain error, answered 400 or 413.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import FormMultiDict
from litestar.enums import RequestEncodingType
from litestar.exceptions import SerializationException, ValidationException
from litestar.handlers import BaseRouteHandler

from rotator.domain.errors import InvalidBody

MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: the largest management body today (an allowlist of 256 CIDRs) is under 20 kB;
bulk key upload (issue #11) is the one that may need more, on its own route."""
MAX_JSON_DEPTH = 32
"""Our bodies nest two levels (an object holding a list); 32 leaves room for any future
shape while staying far below the interpreter's recursion limit (1000)."""

# a JSON string, so brackets inside it do not count; an unterminated one runs to the end.
# `"?` can always match, so the pattern never backtracks: linear in the body's length
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), without
    decoding it. Works on any bytes: invalid JSON is the decoder's to refuse."""
    structure = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, structure)), default=0)


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    # fewer opening brackets than the limit cannot nest deeper than it: every ordinary
    # body stops at the two counts, without the scan
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return nesting_depth(body) > limit


class ApiRequest(Request):
    """Litestar's Request whose `json()` (what `JSONBody` parameters are decoded from)
    refuses a body nested too deep, answers a malformed one with a 400 naming it, and
    checks the body's types strictly.

    Litestar converts a handler's arguments leniently (`strict=False`), which query strings
    need ('5' for an int) but a JSON body must not get: `"demo": 1` would make a demo tenant
    and `"max_daily_requests": "5"` a limit. So the body is first checked against the
    handler's `data` type as JSON carries it; a wrong type is the 400 naming its field.

    Its `form()` (the console's forms, and Litestar's CSRF check, which reads the app's
    request class) refuses what is not UTF-8, as `json()` does."""

    async def json(self) -> Any:
        body = await self.body()  # RequestEntityTooLarge (413) past MAX_BODY_BYTES
        if too_deep(body):
            raise InvalidBody(f"request body: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = await super().json()
        except SerializationException as exc:
            raise InvalidBody(f"request body: not valid JSON ({exc})") from None
        target = _body_type(self.route_handler)
        if target is not None:
            try:
                msgspec.convert(data, target, strict=True)
            except msgspec.ValidationError as exc:
                found = _AT.fullmatch(str(exc))
                key = (found and found["key"]) or "data"  # Litestar's name for the body
                message = found["message"] if found else str(exc)
                raise ValidationException(
                    detail=message, extra=[{"key": key, "message": message}]
                ) from None
        return data

    async def form(self) -> FormMultiDict:
        """The form's fields, refused like a JSON body (msgspec's decoder refuses one) unless
        UTF-8: Litestar would read a URL-encoded form as Latin-1 with bad %-escapes made
        U+FFFD, and store either. A multipart text field is decoded strictly already."""
        try:
            if self.content_type[0] == RequestEncodingType.URL_ENCODED:
                text = (await self.body()).decode()
                return FormMultiDict(parse_qsl(text, keep_blank_values=True, errors="strict"))
            return await super().form()
        except UnicodeDecodeError:
            raise InvalidBody(NOT_UTF8) from None


NOT_UTF8 = "request body: not UTF-8 text"

_AT = re.compile(r"(?P<message>.*?)(?: - at `\$\.?(?P<key>[^`]*)`)?", re.DOTALL)
"""msgspec's 'Expected `int`, got `str` - at `$.max_daily_requests`', apart."""


def _body_type(handler: Any) -> Any:
    """The type of a route handler's `data` argument (its JSON body), or None."""
    parameter = handler.parsed_fn_signature.parameters.get("data")
    return None if parameter is None else parameter.annotation


_READS = frozenset(("GET", "HEAD", "OPTIONS"))


def refuse_unread_body(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """A guard: a write whose route takes no body refuses one, rather than act while
    ignoring what the caller meant (a chosen token sent to POST /v1/tenant/admin-token would
    otherwise be dropped and a random one issued). Judged by the headers, before any read."""
    if connection.scope["method"] in _READS or _body_type(handler) is not None:
        return
    length = connection.headers.get("content-length")
    if (length not in (None, "0")) or "transfer-encoding" in connection.headers:
        raise InvalidBody("request body: this request takes none; send it without a body")
