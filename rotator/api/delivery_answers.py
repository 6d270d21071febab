"""Every answer GET /v1/next gives but the 200, in one table, encoded once.

The delivery route is a bare ASGI handler (rotator/api/delivery.py), so its refusals do
not go through the app's error table (api/errors.py) as exceptions: each is an entry
here, with its status, body and headers built as bytes when the module loads. Only
the numbers of a refusal that carries one (a Retry-After, a daily limit's
`retry_after`) are formatted per request. The bodies and headers are byte for byte
what the error table gives for the same domain error (tests/integration/
test_delivery_answers.py compares them), and each answer's `outcome` is the name the
summary log line counts it under (its `error` string, as api/outcomes.py names them).

REFUSALS maps next_key.lua's refusal statuses to their answers: a new refusal of the
script is one entry there (and one in the OpenAPI table, api/delivery_openapi.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from rotator.api.errors import STORE_RETRY_AFTER_S
from rotator.api.headers import API_HEADER_TUPLES
from rotator.domain import errors
from rotator.domain.clock import utc_day
from rotator.store.delivery import seconds_to_midnight

Headers = tuple[tuple[bytes, bytes], ...]
WaitS = Callable[[Any, int], int]
"""(the refusal's detail, the script's clock in ms) -> seconds to wait, at least 1."""

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
REQUEST_ID = b"x-request-id"


class Answer:
    """One refusal: `render(detail, now_ms)` gives (status, headers, body); the headers
    lack only X-Request-ID, which the handler appends."""

    __slots__ = ("body", "headers", "outcome", "status")

    def __init__(self, status: int, error: str, *extra: tuple[bytes, bytes]) -> None:
        self.status = status
        self.outcome = error
        self.body = _encode({"error": error})
        # the error table's order: the API's headers, the answer's own, then the body's
        self.headers: Headers = (
            *API_HEADER_TUPLES, *extra, _JSON, (b"content-length", b"%d" % len(self.body))
        )  # fmt: skip

    def render(self, detail: Any, now_ms: int) -> tuple[int, Headers, bytes]:
        return self.status, self.headers, self.body


class RetryLater(Answer):
    """A fixed body with a Retry-After computed from the refusal (the demo rate limit)."""

    __slots__ = ("wait_s",)

    def __init__(self, status: int, error: str, wait_s: WaitS) -> None:
        super().__init__(status, error)
        self.wait_s = wait_s

    def render(self, detail: Any, now_ms: int) -> tuple[int, Headers, bytes]:
        body = self.body
        headers = (
            *API_HEADER_TUPLES,
            (b"retry-after", b"%d" % self.wait_s(detail, now_ms)),
            _JSON,
            (b"content-length", b"%d" % len(body)),
        )
        return self.status, headers, body


class Limited(Answer):
    """`{"error": .., "limit": <which>, "retry_after": N}` with Retry-After: N (a limit
    reached; `detail` names the limit)."""

    __slots__ = ("prefix", "wait_s")

    def __init__(self, status: int, error: str, wait_s: WaitS) -> None:
        super().__init__(status, error)
        self.wait_s = wait_s
        self.prefix = self.body[:-1] + b',"limit":'

    def render(self, detail: Any, now_ms: int) -> tuple[int, Headers, bytes]:
        wait = self.wait_s(detail, now_ms)
        limit = detail.decode() if isinstance(detail, bytes) else str(detail)
        body = b'%s%s,"retry_after":%d}' % (self.prefix, _encode(limit), wait)
        headers = (
            *API_HEADER_TUPLES,
            (b"retry-after", b"%d" % wait),
            _JSON,
            (b"content-length", b"%d" % len(body)),
        )
        return self.status, headers, body


def _to_midnight(_: Any, now_ms: int) -> int:
    """A daily limit: until the UTC day ends and the counters start again."""
    return seconds_to_midnight(now_ms, utc_day(now_ms))


def _after_ms(detail: Any, _: int) -> int:
    """`detail` is the wait in ms (the demo throttle's): whole seconds, rounded up."""
    return max(1, -(-int(detail) // 1000))


def _wait_ms_in_clock(_: Any, wait_ms: int) -> int:
    """A per-minute limit: next_key.lua puts the wait in ms where others put its clock."""
    return max(1, -(-int(wait_ms) // 1000))


REFUSALS: dict[str, Answer] = {
    "token": Answer(403, errors.InvalidToken.message),
    "ip": Answer(403, errors.IpNotAllowed.message),
    "service": Answer(404, errors.UnknownService.message),
    "nokeys": Answer(503, errors.NoActiveKeys.message),
    "throttle": RetryLater(429, errors.DemoRateLimited.message, _after_ms),
    "limit": Limited(429, errors.DailyLimitReached.message, _to_midnight),
    "rate": Limited(429, errors.RateLimitReached.message, _wait_ms_in_clock),
    "cooling": RetryLater(503, errors.NoActiveKeys.message, _after_ms),
}
"""next_key.lua's refusal statuses (its header lists them) -> their answers."""

MISSING_PARAMS = Answer(400, errors.MissingParams.message)
INVALID_TOKEN = REFUSALS["token"]
DECRYPT_FAILED = Answer(500, errors.KeyDecryptFailed.message)
STORE_UNAVAILABLE = Answer(
    503, errors.StoreUnavailable.message, (b"retry-after", b"%d" % STORE_RETRY_AFTER_S)
)
