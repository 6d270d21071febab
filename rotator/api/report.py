"""POST /v1/report: a client tells what the provider answered when it used a key (key health).

As lean as the delivery handler: the token as /v1/next takes it (query `token`/`app_token`, or
Bearer), the body decoded by Litestar into ReportBody, one store call (one EVALSHA of
report.lua, which checks the token with next_key.lua's rules and applies the report
atomically), a 202 with the key's state.
"""

from __future__ import annotations

from litestar import Request, post
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from rotator.api.delivery_request import DeliveryHeaders
from rotator.api.errors import HANDLERS
from rotator.api.openapi import error_spec
from rotator.api.schemas import ReportBody
from rotator.api.state import AppState
from rotator.domain import errors
from rotator.domain.iprange import ip_hex
from rotator.domain.records import ReportAnswer
from rotator.domain.tokens import parse as parse_token
from rotator.metrics.fold import count_report

ERROR_RESPONSES = {
    400: error_spec(
        'A body field is missing or wrong (`{"error", "field"}` names it), or no token at '
        'all ("missing token or service")'
    ),
    403: error_spec(
        'Token unknown, revoked or suspended ("invalid token"), or the caller\'s address is '
        "outside the tenant's or app's allowlist (\"ip not allowed\")"
    ),
    404: error_spec(
        'A key the token cannot fetch: no such service ("unknown service") or no such key '
        'in it ("unknown key")'
    ),
    413: error_spec("Request body over 1 MiB"),
    503: error_spec('The store is unavailable ("store unavailable", with Retry-After)'),
}


@post(
    "/v1/report",
    status_code=202,
    summary="Report what the provider answered a key",
    description="The same client or app token as `/v1/next` (Bearer, or the `token`/"
    "`app_token` query parameter). `status` is the provider's HTTP status, 0 when it gave no "
    "answer (timeout, refused connection); `retry_after` its Retry-After in seconds; `error` "
    "its error type (`insufficient_quota`). A 429 cools the key down, a quota error until the "
    "provider's day resets, 401/403 disables it, repeated 5xx or no answer open its circuit "
    "breaker, a 2xx clears its failures (docs/rotation.md). Answers the key's state.",
    responses={
        202: ResponseSpec(data_container=ReportAnswer, description="The key's state now"),
        **ERROR_RESPONSES,
    },
    security=[{"bearer": []}, {}],
    exception_handlers=HANDLERS,
)
async def report(
    request: Request,
    data: JSONBody[ReportBody],
    token: str | None = Parameter(default=None, description="The tenant's client token (`krc_…`)."),
    app_token: str | None = Parameter(
        default=None, description="An app's token (`kra_…`): used instead."
    ),
) -> ReportAnswer:
    state: AppState = request.app.state.rotator
    scope = request.scope
    headers = DeliveryHeaders(scope)  # read by the delivery route's rules
    secret = app_token or token or headers.bearer()
    if not secret:
        raise errors.MissingParams()
    # ours by its prefix, an imported one through the index (as GET /v1/next)
    parsed = parse_token(secret) or await state.tokens.resolve(secret)
    if parsed is None or parsed.kind == "kta":
        raise errors.InvalidToken()
    client = scope.get("client")
    peer = client[0] if client else ""
    resolver = state.client_ip
    forwarded = headers.forwarded_for if resolver.trusted and resolver.trusts(peer) else None
    assert state.reports is not None
    answer = await state.reports.report(
        parsed,
        data.service,
        ip_hex(resolver.resolve(peer, forwarded)),
        key_id=data.key_id,
        status=data.status,
        retry_after=data.retry_after,
        error=data.error,
    )
    count_report(state.metrics, data.status)
    return answer


ROUTES = [report]
