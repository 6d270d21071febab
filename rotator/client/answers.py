"""Reading the rotator's answers: a record for the success status, else the error the
table names (errors.py). Shared by the sync and the async client."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import httpx
import msgspec

from rotator.client import errors
from rotator.client.records import Key, ReportResult

T = TypeVar("T")

_key = msgspec.json.Decoder(Key)
_report = msgspec.json.Decoder(ReportResult)


def key(response: httpx.Response) -> Key:
    """`GET /v1/next`: 200 → Key."""
    return _read(response, 200, _key, reporting=False)


def report(response: httpx.Response) -> ReportResult:
    """`POST /v1/report`: 202 → ReportResult."""
    return _read(response, 202, _report, reporting=True)


def _read(
    response: httpx.Response, ok: int, decoder: msgspec.json.Decoder[T], *, reporting: bool
) -> T:
    if response.status_code == ok:
        try:
            return decoder.decode(response.content)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            # msgspec names the path and the expected type, never the value (it may be a key)
            raise errors.UnexpectedAnswer(
                f"unexpected answer: HTTP {ok} body is not the API's: {exc}", status=ok
            ) from None
    raise error(response, reporting=reporting)


def error(response: httpx.Response, *, reporting: bool = False) -> errors.RotatorError:
    """The exception for a refusal (any status but the route's success)."""
    status = response.status_code
    retry_after_s = retry_after(response.headers.get("retry-after"))
    body = _json_object(response)
    message = body.get("error") if body is not None else None
    if not isinstance(message, str):
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return errors.UnexpectedAnswer(
            f"unexpected answer: HTTP {status} with no API error in it ({kind}, "
            f"{len(response.content)} bytes)",
            status=status,
            body=body,
            retry_after_s=retry_after_s,
        )
    cls = errors.BY_MESSAGE.get(message) or errors.by_status(status, reporting=reporting)
    if cls is errors.UnexpectedAnswer:
        message = f"unexpected answer: {message}"
    return cls(message, status=status, body=body, retry_after_s=retry_after_s)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) else None


def retry_after(value: str | None) -> int | None:
    """Retry-After in whole seconds (rounded up), from a number of seconds; None for
    anything else. (The rotator sends seconds; an HTTP date is the provider's business,
    outcome.py reads those.)"""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return math.ceil(seconds)
