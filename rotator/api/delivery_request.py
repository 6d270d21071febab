"""What GET /v1/next reads from its request, parsed straight from the ASGI scope.

The delivery handler is a bare ASGI route (rotator/api/delivery.py), so nothing builds
a Request, a query MultiDict or a Headers object for it. These two functions read only
what the handler needs, with the exact semantics Litestar's parser had (tested against
it on generated query strings, tests/unit/test_delivery_request.py):

- the query string is decoded as latin-1, split on `&` only, each part split at its
  first `=`, and `+` and `%xx` decoded (UTF-8, invalid sequences replaced) in names
  and values: what `urllib.parse.parse_qsl(keep_blank_values=True)` does;
- a repeated parameter resolves to its first occurrence (MultiDict.get), but for `mask`:
  its first value that masks, if any does (MASK_ON);
- several lines of one header are one comma-separated list (RFC 9110 §5.3), joined in
  order: a proxy that appends its own X-Forwarded-For line (HAProxy's `option
  forwardfor`) must not let the client's line hide it. A header that is not a list
  (Authorization, X-Request-ID) sent twice then fails its own check.
"""

from __future__ import annotations

from urllib.parse import unquote

from litestar.types import Scope

QUERY_NAMES = frozenset(("service", "token", "app_token", "mask"))
"""The query parameters the handler reads (documented in api/delivery_openapi.py)."""
MASK_ON = frozenset(("1", "true", "yes", "on"))
"""The `mask` values that mask, in any case. A repeated `mask` masks when any of its values
does: a client that adds `&mask=1` to a URL already holding `mask=0`, as the hosted guide
says to add it, is answered masked, which is the safe way to be wrong."""


def query_values(query_string: bytes) -> dict[str, str]:
    """The first value of each of QUERY_NAMES present in `query_string` (of `mask`, the
    first that masks, if any does).

    Decoding is skipped for the (usual) parts with no `%` and no `+`; a name is decoded
    before it is compared, so `%73ervice=x` is `service`, as Litestar read it."""
    found: dict[str, str] = {}
    if not query_string:
        return found
    for part in query_string.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        if name in QUERY_NAMES and (name not in found or name == "mask"):
            if "%" in value or "+" in value:
                value = unquote(value.replace("+", " "))
            if name not in found or (masks(value) and not masks(found[name])):
                found[name] = value
    return found


def masks(value: str) -> bool:
    """Whether a `mask` value asks for the key masked (MASK_ON)."""
    return value.lower() in MASK_ON


class DeliveryHeaders:
    """The three request headers a delivery may read, from one pass over the scope's list
    (ASGI header names are lower case); None when absent."""

    __slots__ = ("authorization", "forwarded_for", "request_id")

    def __init__(self, scope: Scope) -> None:
        authorization = forwarded_for = request_id = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                line = value.decode("latin-1")
                authorization = line if authorization is None else authorization + "," + line
            elif name == b"x-forwarded-for":
                line = value.decode("latin-1")
                forwarded_for = line if forwarded_for is None else forwarded_for + "," + line
            elif name == b"x-request-id":
                line = value.decode("latin-1")
                request_id = line if request_id is None else request_id + "," + line
        self.authorization = authorization
        self.forwarded_for = forwarded_for
        self.request_id = request_id

    def bearer(self) -> str | None:
        """The token of `Authorization: Bearer <token>` (scheme case-insensitive)."""
        auth = self.authorization
        if auth and auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return None
