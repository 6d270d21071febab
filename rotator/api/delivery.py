"""GET /v1/next (and the hosted service's path /keyrotator/api/next.php): the hot path.

The handler is deliberately thin and short: parse, one store call (one EVALSHA),
decrypt, mask, encode. Every decision is in scripts/lua/next_key.lua.
"""

from __future__ import annotations

import logging
import re

import msgspec
from litestar import Request, get
from litestar.openapi import ResponseSpec
from litestar.types import ASGIApp, Receive, Scope, Send
from msgspec import UNSET, UnsetType

from rotator.api.delivery_openapi import ERROR_RESPONSES, NextKeyOperation
from rotator.api.errors import HANDLERS
from rotator.api.headers import API_HEADER_TUPLES
from rotator.api.outcomes import counted
from rotator.api.state import AppState
from rotator.crypto import DecryptError, aad_for_key
from rotator.domain import errors
from rotator.domain.iprange import ip_hex
from rotator.domain.masking import mask
from rotator.domain.tokens import parse as parse_token

log = logging.getLogger("rotator.delivery")


class Limits(msgspec.Struct):
    max_daily_requests: int | None
    app_max_daily_requests: int | UnsetType | None = UNSET
    """An app token's own daily limit (null: none); absent for a tenant client token."""
    max_requests_per_minute: int | UnsetType = UNSET
    """The service's per-minute limit; absent when it has none."""


class Meta(msgspec.Struct):
    key_id: int
    usage_today: int


class NextKey(msgspec.Struct):
    """The 200 body; field names and order are the hosted service's contract."""

    service: str
    key_label: str
    key: str
    masked: bool
    policy: str
    limits: Limits
    meta: Meta


_encode = msgspec.json.Encoder().encode
_MASK_ON = frozenset(("1", "true"))
_HEADERS = ((b"content-type", b"application/json"), *API_HEADER_TUPLES)
# draft-ietf-httpapi-ratelimit-headers-09: the tightest daily limit, as one policy named "daily"
_POLICY, _POLICY_VALUE = b"ratelimit-policy", b'"daily";q=%d;w=86400'
_RATELIMIT, _RATELIMIT_VALUE = b"ratelimit", b'"daily";r=%d;t=%d'
# a proxy's request id (nginx's $request_id is 32 hex digits); anything else is ignored
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,128}")


class JsonBody:
    """A finished JSON body as a bare ASGI app, which Litestar passes through untouched.

    The hot path's one success response needs no cookies, no header merging and no
    content negotiation; skipping Litestar's Response machinery saves several µs.
    """

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = _HEADERS) -> None:
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*self.headers, (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header (ASGI names are lower case) without building a Headers object.

    Several lines of one header are one comma-separated list (RFC 9110 §5.3), joined in
    order: a proxy that appends its own X-Forwarded-For line (HAProxy's `option
    forwardfor`) must not let the client's line hide it. A header that is not a list
    (Authorization, X-Request-ID) sent twice then fails its own check."""
    found = None
    for key, value in scope["headers"]:
        if key == name:
            line = value.decode("latin-1")
            found = line if found is None else found + "," + line
    return found


@get(
    ["/v1/next", "/keyrotator/api/next.php"],
    summary="The key to use now",
    description="Picks a key by the service's rotation policy, counts it and returns it, in "
    "one store round trip. The token comes as `Authorization: Bearer <token>` or as the "
    '`token`/`app_token` query parameter. Errors are `{"error": message}`; the messages are '
    "a contract clients match on (a daily limit's 429 adds `limit` and `retry_after`). Under "
    "a daily limit every 200 carries the RateLimit-Policy and RateLimit headers of the "
    "tightest one.",
    responses={
        200: ResponseSpec(data_container=NextKey, description="The key to use now"),
        **ERROR_RESPONSES,
    },
    # documents the query parameters the handler reads itself (nothing parsed per request)
    operation_class=NextKeyOperation,
    # the app's error table, each answer also counted for the summary log line
    exception_handlers=counted(HANDLERS),
)
async def next_key(request: Request) -> ASGIApp:
    state: AppState = request.app.state.rotator
    scope = request.scope
    query = request.query_params
    service = query.get("service")
    token = query.get("app_token") or query.get("token")
    if not token:
        auth = _header(scope, b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
    if not service or not token:
        raise errors.MissingParams()
    parsed = parse_token(token)
    if parsed is None or parsed.kind == "kta":
        raise errors.InvalidToken()

    client = scope.get("client")
    peer = client[0] if client else ""
    resolver = state.client_ip
    forwarded = request_id = None
    if resolver.trusted and resolver.trusts(peer):
        forwarded = _header(scope, b"x-forwarded-for")
        request_id = _header(scope, b"x-request-id")
    delivery = await state.delivery.next_key(
        parsed,
        service,
        ip_hex(resolver.resolve(peer, forwarded)),
        request_id if request_id and _REQUEST_ID.fullmatch(request_id) else "",
    )

    try:
        secret = state.keyring.open(
            delivery.ciphertext, aad_for_key(delivery.tenant, service, delivery.key_id)
        ).decode()
    except DecryptError:
        # never log the blob, the token or the key: which record failed is enough to act on
        log.error(
            "decrypt failed: tenant=%s service=%s key_id=%s",
            delivery.tenant,
            service,
            delivery.key_id,
        )
        # the script counted this delivery; a request answered 500 must use up nothing
        try:
            await state.delivery.refund(delivery)
        except errors.StoreUnavailable:
            log.warning(
                "refund of a failed delivery did not reach the store; it stays counted: "
                "tenant=%s service=%s key_id=%s",
                delivery.tenant,
                service,
                delivery.key_id,
            )
        raise errors.KeyDecryptFailed() from None

    masked = delivery.demo or query.get("mask") in _MASK_ON
    body = NextKey(
        service=service,
        key_label=delivery.label,
        key=mask(secret) if masked else secret,
        masked=masked,
        policy=delivery.policy,
        limits=Limits(
            delivery.max_daily_requests,
            delivery.app_max_daily_requests,
            delivery.max_requests_per_minute,
        ),
        meta=Meta(key_id=delivery.key_id, usage_today=delivery.usage_today),
    )
    # the summary log line's count (rotator/tally.py): 18-32 ns (timeit), against the
    # ≈ 56 µs of worker CPU a delivery costs (bench run 2026-11-27-2317)
    state.tally.ok += 1
    if not delivery.quota:
        return JsonBody(_encode(body))
    return JsonBody(
        _encode(body),
        (
            *_HEADERS,
            (_POLICY, _POLICY_VALUE % delivery.quota),
            (_RATELIMIT, _RATELIMIT_VALUE % (delivery.remaining, delivery.reset_s)),
        ),
    )


ROUTES = [next_key]
