"""What the provider said, learnt from what the caller's provider call raised or returned,
so `Client.call` can report it and decide whether another key may do better.

`classify` is the default hook. It imports no SDK: it reads, by duck typing, what httpx's
`HTTPStatusError` and `Response` and the OpenAI and Anthropic SDKs' `APIStatusError` carry
(`status_code`, `response.headers`, `body`, `code`/`type`) and knows timeouts by type. A
caller with another library passes its own function: anything that returns a
ProviderOutcome, or None for "not a provider answer".
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

NO_ANSWER_STATUS = 0
"""The `status` a report sends when the provider did not answer (a timeout), with
`error: "timeout"`: there is no HTTP status to send."""

TIMEOUT = "timeout"

_ERROR_TYPE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ProviderOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One provider answer, as a report carries it."""

    status: int | None
    """The provider's HTTP status; None when no answer came (a timeout)."""
    retry_after_s: int | None = None
    """Its Retry-After, in whole seconds (rounded up)."""
    error: str | None = None
    """Its error type, e.g. `insufficient_quota`, `rate_limit_error`; `timeout` for none."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 400

    @property
    def retryable(self) -> bool:
        """Another key may succeed: rate limited or out of quota (429), rejected key
        (401/403: the report disables it), the provider failing (5xx) or not answering.
        Any other 4xx is the request's fault and would fail with every key."""
        return self.status is None or self.status in (401, 403, 429) or self.status >= 500


def classify(answer: object) -> ProviderOutcome | None:
    """The default hook: `answer` is what the provider call raised or returned. None means
    "not a provider answer": an exception then propagates unreported, a returned value
    counts as a success."""
    if _is_timeout(answer):
        return ProviderOutcome(status=None, error=TIMEOUT)
    response = getattr(answer, "response", None) or answer
    # the SDKs' errors carry status_code; httpx's HTTPStatusError only its response
    status = getattr(answer, "status_code", None)
    if status is None:
        status = getattr(response, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    headers = getattr(response, "headers", None)
    if status < 400:
        return ProviderOutcome(status=status)
    return ProviderOutcome(
        status=status,
        retry_after_s=retry_after_s(headers) if isinstance(headers, Mapping) else None,
        error=error_type(answer, response),
    )


def _is_timeout(answer: object) -> bool:
    if isinstance(answer, TimeoutError | httpx.TimeoutException):
        return True
    # the SDKs' APITimeoutError, and their kin, without importing them
    return isinstance(answer, BaseException) and any(
        "Timeout" in cls.__name__ for cls in type(answer).__mro__
    )


def retry_after_s(headers: Mapping[str, str], *, now_s: float | None = None) -> int | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI sends it beside Retry-After) or
    `Retry-After` (seconds, or an HTTP date); rounded up; None when absent or unreadable."""
    value = _header(headers, "retry-after-ms")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return math.ceil(seconds / 1000)
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return math.ceil(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, math.ceil(when.timestamp() - (time.time() if now_s is None else now_s)))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers ignore case; a plain dict may use either spelling
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return value if isinstance(value, str) else None


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def error_type(answer: object, response: object) -> str | None:
    """The provider's error type: the SDK exception's `code` or `type` (OpenAI's), else the
    JSON body's `error.code`/`error.type` or `code`/`type` (Anthropic's body is
    `{"type": "error", "error": {"type": "rate_limit_error", ...}}`). Only a short
    identifier is taken: never a message, which may quote the request."""
    for name in ("code", "type"):
        found = _identifier(getattr(answer, name, None))
        if found:
            return found
    body = getattr(answer, "body", None)
    if body is None:
        body = _json(response)
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    for where in (inner, body) if isinstance(inner, dict) else (body,):
        for name in ("code", "type"):
            found = _identifier(where.get(name))
            if found and found != "error":
                return found
    return None


def _identifier(value: Any) -> str | None:
    return value if isinstance(value, str) and _ERROR_TYPE.fullmatch(value) else None


def _json(response: object) -> Any:
    try:
        content = getattr(response, "content", None)
    except Exception:  # httpx raises ResponseNotRead for a stream nobody read
        return None
    if not isinstance(content, bytes | bytearray) or not content:
        return None
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None
