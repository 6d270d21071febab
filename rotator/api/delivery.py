"""GET /v1/next (and the hosted service's path /keyrotator/api/next.php): the hot path.

Every decision is in scripts/lua/next_key.lua; the handler parses, makes one store call
(one EVALSHA), opens the key (api/secret_cache.py: decrypted once per key and
ciphertext) and sends pre-encoded bytes.

The route is an ordinary Litestar `@get` route (`next_key`: its OpenAPI entry, its
place in the app, 405 as Litestar answers it), whose one middleware,
`deliver`, answers every GET itself as a bare ASGI app and never calls the handler.
Litestar's Request, parameter parsing, signature model and Response machinery cost
about 30 µs of a delivery (issue #14; docs/scaling.md has the breakdown), more than
everything the delivery itself does in this process. (A separate `@asgi` route handler
cannot share the paths with the `@get` one that documents them: Litestar refuses it.)

What Litestar did that `deliver` now does itself, the same way:
- the query string and the three headers it reads: api/delivery_request.py (the
  exact semantics of Litestar's parser, tested against it);
- every refusal: api/delivery_answers.py, the same bodies and headers as the app's
  error table, encoded once; an unexpected exception still reaches the app's
  error table (a 500 in our JSON shape), counted like every other answer.

Every answer `deliver` gives carries X-Request-ID (rotator/request_ids.py); the app's
request-id middleware must leave these paths alone (DELIVERY_PATHS).
"""

from __future__ import annotations

import logging
from time import perf_counter

import msgspec
from litestar import Response, get, route
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_204_NO_CONTENT
from litestar.types import Receive, Scope, Send
from msgspec import UNSET, UnsetType

from rotator import request_scope
from rotator.api import delivery_answers as answers
from rotator.api.delivery_openapi import ERROR_RESPONSES, NextKeyOperation
from rotator.api.delivery_request import DeliveryHeaders, masks, query_values
from rotator.api.errors import HANDLERS, store_outage
from rotator.api.headers import API_HEADER_TUPLES
from rotator.api.outcomes import counted
from rotator.api.request_id import RequestIdMiddleware
from rotator.api.state import AppState
from rotator.crypto import DecryptError
from rotator.domain import errors
from rotator.domain.iprange import ip_hex
from rotator.domain.models import Delivery
from rotator.domain.tokens import parse as parse_token
from rotator.request_ids import RequestIds
from rotator.request_scope import RequestScope
from rotator.store.scripts.delivery import Refused

log = logging.getLogger("rotator.delivery")

DELIVERY_PATHS = ("/v1/next", "/keyrotator/api/next.php")
"""The delivery route's paths: the app's middleware (request ids, logs) must skip them."""


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
    """The 200 body; field names and order are the hosted service's contract. The handler
    sends it as bytes (api/secret_cache.py's body prefix + _tail), equal to msgspec's encoding
    of this struct (tests/integration/test_delivery_route.py)."""

    service: str
    key_label: str
    key: str
    masked: bool
    policy: str
    limits: Limits
    meta: Meta


_OK_HEADERS = ((b"content-type", b"application/json"), *API_HEADER_TUPLES)
# draft-ietf-httpapi-ratelimit-headers-09: the tightest daily limit, as one policy named "daily"
_POLICY, _POLICY_VALUE = b"ratelimit-policy", b'"daily";q=%d;w=86400'
_RATELIMIT, _RATELIMIT_VALUE = b"ratelimit", b'"daily";r=%d;t=%d'
_REQUEST_ID = answers.REQUEST_ID
_CONTENT_LENGTH = b"content-length"
_START = "http.response.start"
_BODY = "http.response.body"
_ids = RequestIds()


@get(
    list(DELIVERY_PATHS),
    summary="The key to use now",
    description="Picks a key by the service's rotation policy, counts it and returns it, in "
    "one store round trip. The token comes as `Authorization: Bearer <token>` or as the "
    '`token`/`app_token` query parameter. Errors are `{"error": message}`; the messages are '
    "a contract clients match on (a daily limit's 429 adds `limit` and `retry_after`). Under "
    "a daily limit every 200 carries the RateLimit-Policy and RateLimit headers of the "
    "tightest one. Every answer carries `X-Request-ID`: the trusted proxy's, or a new one.",
    responses={
        200: ResponseSpec(data_container=NextKey, description="The key to use now"),
        **ERROR_RESPONSES,
    },
    # documents the query parameters the handler reads itself (nothing parsed per request)
    operation_class=NextKeyOperation,
    # `deliver` answers every GET; what it does not answer itself (an unexpected exception:
    # a 500 in our JSON shape) goes through the app's error table, counted like the rest
    middleware=[lambda app: deliver],
    exception_handlers=counted(HANDLERS),
)
async def next_key() -> NextKey:
    """The route's OpenAPI entry and its place in the app; never called: its middleware,
    `deliver`, answers every GET without calling it (see the module docstring)."""
    raise AssertionError("GET /v1/next is answered by its middleware, `deliver`")


async def deliver(scope: Scope, receive: Receive, send: Send) -> None:
    """GET /v1/next, as a bare ASGI app (see the module docstring). With metrics on it
    times itself and its store call: inline, since a timing middleware or store wrapper
    would cost a coroutine frame per delivery."""
    started = perf_counter()
    state: AppState = scope["app"].state.rotator
    metrics = state.metrics
    try:
        headers = DeliveryHeaders(scope)

        client = scope.get("client")
        peer = client[0] if client else ""
        resolver = state.client_ip
        trusted = resolver.trusted and resolver.trusts(peer)
        store_id, answer_id = _ids.choose(headers.request_id if trusted else None)

        query = query_values(scope["query_string"])
        service = query.get("service")
        token = query.get("app_token") or query.get("token") or headers.bearer()
        if not service or not token:
            await _refuse(state, send, answers.MISSING_PARAMS, answer_id)
            return
        forwarded = headers.forwarded_for if trusted else None
        try:
            # the one place a token becomes its tenant: ours by its prefix, an imported one
            # through the index (cached; a lookup only on a miss)
            parsed = parse_token(token) or await state.tokens.resolve(token)
            if parsed is None or parsed.kind == "kta":
                await _refuse(state, send, answers.INVALID_TOKEN, answer_id)
                return
            address = ip_hex(resolver.resolve(peer, forwarded))
            sent = perf_counter()
            delivery = await state.delivery.pick(parsed, service, address, store_id)
            if metrics is not None:
                metrics.round_trip.observe(perf_counter() - sent)
        except errors.StoreUnavailable as exc:
            store_outage(exc)
            await _refuse(state, send, answers.STORE_UNAVAILABLE, answer_id)
            return
        if delivery.__class__ is Refused:
            answer = answers.REFUSALS[delivery.status]
            await _refuse(state, send, answer, answer_id, delivery.detail, delivery.now_ms)
            return

        secrets = state.secrets
        if delivery.key_ids is not None:
            secrets.prune(delivery.tenant, service, delivery.key_ids)
        masked = delivery.demo or ("mask" in query and masks(query["mask"]))
        try:
            prefix = secrets.body_prefix(
                delivery.tenant, service, delivery.key_id, delivery.ciphertext,
                delivery.label, delivery.policy, masked,
            )  # fmt: skip
        except DecryptError:
            await _decrypt_failed(state, delivery, answer_id)
            await _refuse(state, send, answers.DECRYPT_FAILED, answer_id)
            return
        body = prefix + _tail(delivery)
        # the summary log line's count (rotator/tally.py): an attribute increment, ~20 ns
        state.tally.ok += 1
        if delivery.quota:
            response_headers = [
                *_OK_HEADERS,
                (_POLICY, _POLICY_VALUE % delivery.quota),
                (_RATELIMIT, _RATELIMIT_VALUE % (delivery.remaining, delivery.reset_s)),
                (_REQUEST_ID, answer_id),
                (_CONTENT_LENGTH, b"%d" % len(body)),
            ]
        else:
            response_headers = [
                *_OK_HEADERS, (_REQUEST_ID, answer_id), (_CONTENT_LENGTH, b"%d" % len(body))
            ]  # fmt: skip
        await send({"type": _START, "status": 200, "headers": response_headers})
        await send({"type": _BODY, "body": body})

    finally:
        if metrics is not None:
            metrics.delivery_latency.observe(perf_counter() - started)


def _tail(delivery: Delivery) -> bytes:
    """The 200 body after the prefix: the limits' values and the meta numbers."""
    daily = delivery.max_daily_requests
    app_daily = delivery.app_max_daily_requests
    tail = b"null" if daily is None else b"%d" % daily
    if app_daily is not UNSET:
        app_value = b"null" if app_daily is None else b"%d" % app_daily
        tail += b',"app_max_daily_requests":' + app_value
    if delivery.max_requests_per_minute is not UNSET:
        tail += b',"max_requests_per_minute":%d' % delivery.max_requests_per_minute
    return tail + b'},"meta":{"key_id":%d,"usage_today":%d}}' % (
        delivery.key_id, delivery.usage_today
    )  # fmt: skip


async def _refuse(
    state: AppState,
    send: Send,
    answer: answers.Answer,
    request_id: bytes,
    detail: object = None,
    now_ms: int = 0,
) -> None:
    status, headers, body = answer.render(detail, now_ms)
    state.tally.add(answer.outcome)
    await send({"type": _START, "status": status, "headers": [*headers, (_REQUEST_ID, request_id)]})
    await send({"type": _BODY, "body": body})


async def _decrypt_failed(state: AppState, delivery: Delivery, request_id: bytes) -> None:
    # the route runs outside the app's middleware: its lines get the request's scope here,
    # so they carry the X-Request-ID the client was answered with
    scope = RequestScope(request_id=request_id.decode(), tenant=delivery.tenant)
    token = request_scope.open_scope(scope)
    try:
        # never log the blob, the token or the key: which record failed is enough to act on
        log.error(
            "decrypt failed: tenant=%s service=%s key_id=%s",
            delivery.tenant, delivery.service, delivery.key_id,
        )  # fmt: skip
        # the script counted this delivery; a request answered 500 must use up nothing
        try:
            await state.delivery.refund(delivery)
        except errors.StoreUnavailable:
            log.warning(
                "refund of a failed delivery did not reach the store; it stays counted: "
                "tenant=%s service=%s key_id=%s",
                delivery.tenant, delivery.service, delivery.key_id,
            )  # fmt: skip
    finally:
        request_scope.close_scope(token)


@route(
    list(DELIVERY_PATHS),
    http_method=HttpMethod.OPTIONS,
    include_in_schema=False,
    sync_to_thread=False,
    # the paths sit outside the app's request-id middleware (for `deliver`'s sake): this
    # answer gets its X-Request-ID here, as every other answer on them does
    middleware=[RequestIdMiddleware],
)
def options() -> Response[None]:
    """OPTIONS as Litestar answers it for a GET route, with an X-Request-ID."""
    return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": "GET, OPTIONS"})


# `options` first: registered after `next_key`, it would meet the OPTIONS handler Litestar
# adds to a route that has none (a 405's Allow then lists OPTIONS first: order is no meaning)
ROUTES = [options, next_key]
