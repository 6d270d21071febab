"""What the client sends: the same requests from the sync and the async client."""

from __future__ import annotations

import msgspec

from rotator import __version__
from rotator.client.outcome import NO_ANSWER_STATUS, ProviderOutcome

NEXT_PATH = "/v1/next"
REPORT_PATH = "/v1/report"
DEFAULT_TIMEOUT_S = 5.0
"""A delivery takes about a millisecond; five seconds covers a store failing over."""

_encode = msgspec.json.Encoder().encode


def headers(token: str) -> dict[str, str]:
    """The token as a Bearer header, never in the query string: query strings end up in
    access logs (SPEC §1)."""
    if not isinstance(token, str) or not token.strip():
        raise ValueError("token: a client token (krc_…) or an app token (kra_…) is required")
    if not (token.strip().isascii() and token.strip().isprintable()):
        # no token holds such characters, and a header cannot carry them; the token itself
        # stays out of the message (and out of the exception's args)
        raise ValueError("token: holds characters no token has (outside printable ASCII)")
    return {
        "Authorization": f"Bearer {token.strip()}",
        "Accept": "application/json",
        "User-Agent": f"keyrotator-client/{__version__}",
    }


def next_params(service: str, mask: bool) -> dict[str, str]:
    return {"service": service, "mask": "1"} if mask else {"service": service}


def report_body(
    service: str, key_id: int, status: int, retry_after_s: int | None, error: str | None
) -> bytes:
    """`{"service", "key_id", "status", "retry_after"?, "error"?}` (SPEC §7)."""
    body: dict[str, object] = {"service": service, "key_id": key_id, "status": status}
    if retry_after_s is not None:
        body["retry_after"] = retry_after_s
    if error is not None:
        body["error"] = error
    return _encode(body)


def outcome_body(service: str, key_id: int, outcome: ProviderOutcome) -> bytes:
    status = NO_ANSWER_STATUS if outcome.status is None else outcome.status
    return report_body(service, key_id, status, outcome.retry_after_s, outcome.error)


JSON_HEADERS = {"Content-Type": "application/json"}


def unreachable(exc: Exception) -> str:
    """Why no answer came, in words (a certificate not trusted, a refused connection, a
    timeout): httpx's class and its cause's message, which name no token (the token is a
    header, never in the URL or the error)."""
    cause = str(exc).strip()
    return f"rotator unreachable: {type(exc).__name__}" + (f": {cause}" if cause else "")
