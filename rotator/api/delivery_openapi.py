"""The OpenAPI description of GET /v1/next: its error responses, and its operation completed
by hand.

The handler reads its query parameters and headers itself (rotator/api/delivery.py),
so Litestar sees none to document, and declaring them as handler parameters would
make Litestar parse and validate them on every delivery. The generated operation is
completed here instead, once, when the document is built: the query parameters, the
two ways to pass a token, and every status of the delivery error table (SPEC §1).
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
)

from rotator.api.openapi import error_spec

_STRING = Schema(type=OpenAPIType.STRING)

PARAMETERS = [
    Parameter(
        name="service",
        param_in="query",
        required=True,
        schema=_STRING,
        description="The service's slug, e.g. `openai`.",
    ),
    Parameter(
        name="token",
        param_in="query",
        schema=_STRING,
        description="The tenant's client token (`krc_…`). Prefer `Authorization: Bearer`: "
        "query strings end up in access logs.",
    ),
    Parameter(
        name="app_token",
        param_in="query",
        schema=_STRING,
        description="An app's token (`kra_…`); when present it is used instead of `token`.",
    ),
    Parameter(
        name="mask",
        param_in="query",
        schema=_STRING,
        description="`1`, `true`, `yes` or `on` (any case) masks the key in the response; "
        "repeated, it masks if any value does (a demo tenant always masks).",
    ),
]


ERROR_RESPONSES = {
    400: error_spec('`service` missing, or no token at all: "missing token or service"'),
    403: error_spec(
        'Token unknown or revoked ("invalid token"), or the caller\'s address is '
        "outside the tenant's or app's allowlist (\"ip not allowed\")"
    ),
    404: error_spec('No such service for this tenant: "unknown service"'),
    429: error_spec(
        'A daily limit is reached: `{"error": "service daily limit reached", "limit": '
        '"service"|"app"|"key", "retry_after": N}` (`key`: every key the policy could pick is '
        "at its own limit), with Retry-After (seconds to the end of the UTC day); or a "
        'per-minute limit is reached: `{"error": "rate limit reached", "limit": '
        '"service"|"key", "retry_after": N}` with Retry-After (seconds until a slot frees); '
        "or demo "
        'traffic is over its per-address rate (`{"error": "demo rate limit"}`, with '
        "Retry-After)"
    ),
    500: error_spec(
        'A stored key cannot be decrypted (wrong master key, tampering): "key decrypt failed"'
    ),
    503: error_spec(
        'The service has no active, unexpired key ("no active keys": final until a tenant '
        "admin adds or enables one; when its active keys are only cooling down after "
        "reports, with Retry-After: seconds until the first recovers), or "
        'the store is unavailable ("store unavailable", with Retry-After: send the request '
        "again)"
    ),
}

RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
    description="Seconds until the next request can succeed: to the end of the UTC day for a "
    "daily limit, to the next allowed request for the demo rate limit.",
)
RATELIMIT_HEADERS = {
    "RateLimit-Policy": OpenAPIHeader(
        schema=_STRING,
        description="The tightest daily limit that applies (the service's or the app's, "
        'the one with fewer requests left), e.g. `"daily";q=10000;w=86400` '
        "(draft-ietf-httpapi-ratelimit-headers-09). Absent when no daily limit applies.",
    ),
    "RateLimit": OpenAPIHeader(
        schema=_STRING,
        description='What is left of it, e.g. `"daily";r=9957;t=3600`: `r` requests until '
        "the limit, `t` seconds until the UTC day ends and the counters start again.",
    ),
}


@dataclass
class NextKeyOperation(Operation):
    """Litestar's generated operation for the route, with the parts it cannot see added."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), *PARAMETERS]
        # the token may come as a Bearer header or in the query string (or not at all: 400)
        self.security = [{"bearer": []}, {}]
        too_many = (self.responses or {}).get("429")
        if isinstance(too_many, OpenAPIResponse):
            too_many.headers = {"Retry-After": RETRY_AFTER}
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.headers = dict(RATELIMIT_HEADERS)
