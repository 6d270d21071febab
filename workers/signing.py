"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

The key is the base64-decoded part of the tenant's `whsec_<base64>` secret. The same
event keeps its id across retries; the timestamp is the attempt's, so each attempt
is signed afresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"


class BadSecret(ValueError):
    """The stored secret is not `whsec_<base64>`."""


def secret_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("webhook secret is not whsec_<base64>") from None
    if not key:
        raise BadSecret("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign(secret, msg_id, timestamp_s, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    now_s: int,
    tolerance_s: int = 300,
) -> bool:
    """True when one of the `v1,` signatures matches and the timestamp is within tolerance."""
    try:
        msg_id = received["webhook-id"]
        timestamp_s = int(received["webhook-timestamp"])
        offered = received["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    expected = sign(secret, msg_id, timestamp_s, body).encode()
    # bytes, not str: compare_digest raises TypeError on a non-ASCII str, and a header is
    # whatever the sender put there
    return any(
        hmac.compare_digest(expected, candidate.encode(errors="replace")) for candidate in offered
    )
