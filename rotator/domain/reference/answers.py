"""The answer to one delivery request, as the model predicts it and as the test reads it back.

Only what a client can see: the HTTP status, the error kind and its fields, or the picked key
and the limits of the 200 body and its RateLimit headers. Equal answers compare equal.
"""

from __future__ import annotations

import msgspec

OK = 200
FORBIDDEN = 403
NOT_FOUND = 404
TOO_MANY = 429
UNAVAILABLE = 503


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    error: str = ""
    """'' on 200, else one of token, ip, throttle, service, rate, limit, nokeys."""
    limit: str = ""
    """Which limit refused (429 limit: service, app or key; 429 rate: service or key)."""
    retry_after_s: int = 0
    key_id: int = 0
    label: str = ""
    usage_today: int = 0
    policy: str = ""
    max_daily_requests: int | None = None
    max_requests_per_minute: int | msgspec.UnsetType = msgspec.UNSET
    """The service's per-minute limit; UNSET when none."""
    app_max_daily_requests: int | msgspec.UnsetType | None = msgspec.UNSET
    """The app's limit (None: none) for an app token; UNSET for the tenant's client token."""
    demo: bool = False
    quota: int = 0
    """The tightest daily limit (RateLimit-Policy); 0 when none applies."""
    remaining: int = 0
    reset_s: int = 0


def refused(error: str, *, limit: str = "", retry_after_s: int = 0) -> Answer:
    status = {
        "token": FORBIDDEN,
        "ip": FORBIDDEN,
        "throttle": TOO_MANY,
        "service": NOT_FOUND,
        "rate": TOO_MANY,
        "limit": TOO_MANY,
        "nokeys": UNAVAILABLE,
        "cooling": UNAVAILABLE,
    }[error]
    return Answer(status=status, error=error, limit=limit, retry_after_s=retry_after_s)
