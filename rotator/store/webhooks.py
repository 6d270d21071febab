"""A tenant's webhook target (URL and signing secret) and its delivery log.

The log `{t:T}:deliveries` holds one JSON entry per delivery attempt, newest first,
capped at WEBHOOK_LOG_KEEP. Entries carry a seq (scripts/lua/log_delivery.lua) that is
contiguous along the list, so `page()` can use a seq as a cursor that stays valid
while new attempts are logged in front of it.
"""

from __future__ import annotations

import re

import msgspec

from rotator.crypto import KeyRing, aad_for_webhook_secret
from rotator.domain.errors import InvalidField
from rotator.domain.records import DeliveryAttempt, DeliveryPage, Outcome
from rotator.store import keys
from rotator.store.connection import Redis, as_str
from rotator.store.scripts import records as scripts
from rotator.store.scripts.call import Plain, run
from rotator.tuning import WEBHOOK_LOG_KEEP

MAX_PAGE = 200
"""Entries one page may hold."""

__all__ = ["DeliveryAttempt", "Outcome"]  # the record and its outcomes, as workers log them


class WebhookTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to deliver a tenant's events. `secret` is the full "whsec_<base64>"."""

    url: str
    secret: str
    events: str
    """Subscribed types as stored: ",type,type,"."""


_encode = msgspec.json.Encoder().encode
_decode_attempt = msgspec.json.Decoder(DeliveryAttempt).decode  # ignores the stored "seq"
_SEQ = re.compile(rb'^\{"seq":(\d+),')


async def load_target(redis: Redis, keyring: KeyRing, tenant: str) -> WebhookTarget | None:
    """The tenant's webhook, its secret opened; None when none is configured.

    Raises rotator.crypto.DecryptError when the secret cannot be opened (master key).
    """
    url, sealed, events = await redis.hmget(keys.tenant(tenant), ["wh_url", "wh_secret", "events"])
    if not url or not sealed:
        return None
    secret = keyring.open(sealed, aad_for_webhook_secret(tenant)).decode()
    return WebhookTarget(url=as_str(url) or "", secret=secret, events=as_str(events) or "")


async def log_attempt(redis: Redis, tenant: str, attempt: DeliveryAttempt) -> int | None:
    """Prepend an attempt to the tenant's delivery log; returns its seq, or None when the
    tenant is gone (nothing logged: a log recreated then would outlive its tenant)."""
    return await run(
        Plain(redis), scripts.log_delivery(tenant, _encode(attempt), keep=WEBHOOK_LOG_KEEP)
    )


def _seq_of(raw: bytes) -> int:
    match = _SEQ.match(raw)
    return int(match.group(1)) if match else 0


async def page(
    redis: Redis, tenant: str, *, limit: int, cursor: int | None = None
) -> tuple[list[DeliveryAttempt], int | None]:
    """Up to `limit` attempts, newest first, starting at seq `cursor` (None = the newest).

    Returns (attempts, next cursor or None at the end of the log).
    """
    key = keys.deliveries(tenant)
    raw: list[bytes] = []
    for _ in range(5):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lindex(key, 0)
            pipe.llen(key)
            head, length = await pipe.execute()
        if head is None:
            return [], None
        head_seq = _seq_of(head)
        tail_seq = head_seq - length + 1
        start = 0 if cursor is None else max(0, head_seq - cursor)
        raw = await redis.lrange(key, start, start + limit - 1)
        # an attempt logged between the two reads shifts the list by one: read again
        if cursor is None or not raw or _seq_of(raw[0]) <= cursor:
            break
    if cursor is not None:
        raw = [r for r in raw if _seq_of(r) <= cursor]
    next_cursor = None
    if raw and _seq_of(raw[-1]) - 1 >= max(tail_seq, 1):
        next_cursor = _seq_of(raw[-1]) - 1
    return [_decode_attempt(r) for r in raw], next_cursor


async def deliveries(
    redis: Redis, tenant: str, *, limit: int, cursor: int | None = None
) -> DeliveryPage:
    """A page of the delivery log, as GET /v1/webhooks/deliveries answers it: `limit`
    entries (1 to MAX_PAGE) from seq `cursor` (None = the newest)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidField("limit", f"must be between 1 and {MAX_PAGE}")
    if cursor is not None and cursor < 1:
        raise InvalidField("cursor", "not a cursor from a previous page")
    attempts, next_seq = await page(redis, tenant, limit=limit, cursor=cursor)
    next_cursor = None if next_seq is None else str(next_seq)
    return DeliveryPage(deliveries=attempts, next_cursor=next_cursor)
