"""The rotator's refusals as exceptions: one class per row of the error table (docs/api.md),
all under one `RotatorError`, so a caller catches exactly what it can act on.

An answer is matched on its `error` message, as SPEC §1 asks clients to (the status alone
cannot tell `invalid token` from `ip not allowed`); an answer the table does not describe
(a proxy's HTML page, a 200 of the wrong shape) raises `UnexpectedAnswer`, never a
KeyError. No message here holds a token or a key: the client sends the token as a header
and the server never echoes it.
"""

from __future__ import annotations

from typing import Any


class RotatorError(Exception):
    """Base class. `status` is the HTTP status (None when no answer came), `message` the
    answer's `error` (or what went wrong), `body` the parsed JSON body (None if there was
    none), `retry_after_s` the answer's Retry-After in seconds, when it carried one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} (HTTP {self.status})"

    def _body_text(self, name: str) -> str | None:
        """The body's text field `name`; None when the answer has no such text."""
        value = (self.body or {}).get(name)
        return value if isinstance(value, str) else None


class MissingParams(RotatorError):
    """400 `missing token or service`."""


class InvalidRequest(RotatorError):
    """400 for anything else, e.g. a report's bad body; `field` names the culprit if the
    answer did."""

    @property
    def field(self) -> str | None:
        return self._body_text("field")


class InvalidToken(RotatorError):
    """403 `invalid token`: unknown, revoked, or its tenant or app is suspended."""


class IpNotAllowed(RotatorError):
    """403 `ip not allowed`: this host is outside the tenant's or the app's allowlist."""


class UnknownService(RotatorError):
    """404 `unknown service`: no such slug for this token's tenant."""


class NotFound(RotatorError):
    """404 for anything else: typically a `base_url` that is not the rotator's, or a server
    older than the route."""


class UnknownKey(NotFound):
    """404 answering a report: the key is not one this token can fetch."""


class LimitReached(RotatorError):
    """429: a limit refused the request; send again after `retry_after_s`."""

    @property
    def limit(self) -> str | None:
        """Which limit: `service`, `app` or `key` (None when the answer does not say)."""
        return self._body_text("limit")


class DailyLimitReached(LimitReached):
    """429 `service daily limit reached`; `retry_after_s` runs to the end of the UTC day."""


class RateLimitReached(LimitReached):
    """429 `rate limit reached`: a per-minute limit."""


class DemoRateLimited(LimitReached):
    """429 `demo rate limit`: a demo tenant's per-address throttle."""


class NoActiveKeys(RotatorError):
    """503 `no active keys`. With `retry_after_s`, every key is cooling down and the first
    recovers then; without, none will until a tenant admin adds or enables one."""


class StoreUnavailable(RotatorError):
    """503 `store unavailable`: send the request again after `retry_after_s`."""


class KeyDecryptFailed(RotatorError):
    """500 `key decrypt failed`: the server's master key cannot open the stored key."""


class ServerError(RotatorError):
    """Another 5xx, e.g. `internal error`."""


class UnexpectedAnswer(RotatorError):
    """An answer the API does not give: not its JSON, or a status the table lacks."""


class Unreachable(RotatorError):
    """No answer: the connection failed or timed out (the cause is chained)."""


BY_MESSAGE: dict[str, type[RotatorError]] = {
    "missing token or service": MissingParams,
    "invalid token": InvalidToken,
    "ip not allowed": IpNotAllowed,
    "unknown service": UnknownService,
    "service daily limit reached": DailyLimitReached,
    "rate limit reached": RateLimitReached,
    "demo rate limit": DemoRateLimited,
    "no active keys": NoActiveKeys,
    "store unavailable": StoreUnavailable,
    "key decrypt failed": KeyDecryptFailed,
}
"""The delivery error table (SPEC §1 and §7): its messages are the contract."""


def by_status(status: int, *, reporting: bool) -> type[RotatorError]:
    """The class for a message the table does not list, by its status alone."""
    if status == 400:
        return InvalidRequest
    if status == 404:
        return UnknownKey if reporting else NotFound
    if status == 429:
        return LimitReached
    if status >= 500:
        return ServerError
    return UnexpectedAnswer
