"""POST /v1/report's store: checks a report and hands it to report.lua (one EVALSHA).

A report is a client call like a delivery: the same token rules (the script checks them, as
next_key.lua does), the same pipelined connection and clock as the delivery store, one round
trip. What a report does to the key is report.lua's, by rotator/domain/health.py's rules.
"""

from __future__ import annotations

from rotator.domain import errors, health
from rotator.domain.clock import iso_ms
from rotator.domain.records import ReportAnswer
from rotator.domain.tokens import ParsedToken
from rotator.settings import Settings
from rotator.store.delivery import DeliveryStore
from rotator.store.scripts import report as scripts
from rotator.store.services import SLUG

MAX_ERROR_CHARS = 100
MAX_RETRY_AFTER_S = 10 * 366 * 86_400
"""Larger is refused as a mistake; the service's max_cooldown_seconds caps what is used."""

_REFUSED: dict[str, tuple[type[errors.RotatorError], str | None]] = {
    "token": (errors.InvalidToken, None),
    "ip": (errors.IpNotAllowed, None),
    "service": (errors.UnknownService, None),
    "key": (errors.NotFound, "unknown key"),
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_report(
    key_id: object, status: object, retry_after: object, error: object
) -> tuple[int, int, int | None, str]:
    """The report's fields checked: key id, status, retry_after s, error (lower case, '' =
    none). InvalidField names the first bad one."""
    if not _is_int(key_id) or not 1 <= key_id <= 2**53:  # type: ignore[operator]
        raise errors.InvalidField("key_id", "must be a positive integer")
    if not _is_int(status) or not (status == health.NO_RESPONSE or 100 <= status <= 599):  # type: ignore[operator]
        raise errors.InvalidField(
            "status", "must be the provider's HTTP status (100-599), or 0 for no response"
        )
    if retry_after is not None and (
        not _is_int(retry_after) or not 0 <= retry_after <= MAX_RETRY_AFTER_S  # type: ignore[operator]
    ):
        raise errors.InvalidField(
            "retry_after", f"must be whole seconds from 0 to {MAX_RETRY_AFTER_S}, or absent"
        )
    if error is None:
        error = ""
    if (
        not isinstance(error, str)
        or len(error) > MAX_ERROR_CHARS
        or not all(c.isascii() and (c.isalnum() or c in "_-.:") for c in error)
    ):
        raise errors.InvalidField(
            "error",
            f"must be the provider's error type: up to {MAX_ERROR_CHARS} characters of "
            "a-z, 0-9, '_', '-', '.', ':'",
        )
    return key_id, status, retry_after, error.lower()  # type: ignore[return-value]


class ReportStore:
    """Reports of one process, on the delivery store's connection and clock."""

    def __init__(self, delivery: DeliveryStore, settings: Settings) -> None:
        self.delivery = delivery
        self._usage_ttl_s = str(settings.usage_retention_days * 86_400 + 86_400)
        self._events_maxlen = str(settings.events_maxlen)

    async def report(
        self,
        token: ParsedToken,
        service: str,
        ip_hex: str,
        *,
        key_id: object,
        status: object,
        retry_after: object = None,
        error: object = None,
    ) -> ReportAnswer:
        """Record one report and apply it to the key; raises the domain error of a refusal
        (a bad field, a token that may not fetch from the service, no such key)."""
        if not SLUG.fullmatch(service):
            raise errors.UnknownService()
        key_id, status, retry_after_s, error_type = check_report(key_id, status, retry_after, error)
        d = self.delivery
        reply = await scripts.report(
            d.fast,
            token.tenant,
            token.app,
            service,
            token.secret_hash,
            ip_hex,
            str(d.clock()) if d.fixed_clock else "",
            key_id=key_id,
            status=status,
            retry_after_s=retry_after_s,
            error=error_type,
            usage_ttl_s=self._usage_ttl_s,
            events_maxlen=self._events_maxlen,
        )
        if isinstance(reply, scripts.ReportRefused):
            cls, message = _REFUSED[reply.status]
            raise cls(message)
        until = reply.cooldown_until_ms
        return ReportAnswer(
            state=reply.state, cooldown_until=None if until is None else iso_ms(until)
        )
