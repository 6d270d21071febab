"""The audit log's vocabulary: who acted (Actor), and what of a write may be written down.

A record says who (role, door, a fingerprint of the credential, the client address), what
(the store function's name as the action, the resource, the request's fields) and how it
ended. Nothing in it may be a secret: `redact` keeps each field's name and drops the value of
any field that is, or may hold, a provider key, a token, a webhook secret or a password, by
its name and, as a second net, by the shape of the text (our tokens and webhook secrets, a
URL's credentials).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import msgspec

REDACTED = "[redacted]"
"""What a record shows in place of a secret field's value: the field changed, not to what."""

SECRET_NAME_PARTS = ("secret", "token", "password", "sealed", "master_key")
"""A field whose name holds one of these is written as REDACTED, whatever its value."""

SECRET_SHAPES = re.compile(r"\b(?:k(?:ta|rc|ra)_[A-Za-z0-9_-]+|whsec_[A-Za-z0-9+/=]+)")
"""Text shaped like our tokens or webhook secrets, redacted wherever it appears in a value."""
URL_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")
"""The user:password of a URL (a refused webhook URL may hold some)."""

MAX_LIST_ITEMS = 20
"""A longer list (a bulk add, an import's rows) is written as its length only."""

MAX_TEXT_CHARS = 200
"""A longer text value is cut, so one record stays small."""

OK = "ok"
REFUSED = "refused"
EVENT_WRITE = "audit.write"
"""The webhook event of a management write that changed something."""
EVENT_REFUSED = "audit.refused"
"""The webhook event of an authenticated write refused by a rule."""


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who is acting, as a record names them: never the credential itself."""

    role: Literal["operator", "tenant_admin"]
    via: Literal["api", "console", "cli"]
    credential: str
    """`token:<fp>` (the API), `session:<fp>` (the console), `cli:<os user>` (the CLI); fp is
    the first 8 hex digits of the SHA-256 of the token's or session's stored secret."""
    address: str
    """The client's address (behind trusted proxies, the one they name), or `cli`."""


def fingerprint(secret: str) -> str:
    """8 hex digits naming a credential in a record: enough to tell two apart, useless to
    forge one (2^32 candidates of a 256-bit secret)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def redact_text(value: str) -> str:
    """A text as a record may hold it: token-shaped parts and URL credentials hidden, cut
    at MAX_TEXT_CHARS (a refusal's message may repeat whatever the request sent)."""
    value = URL_CREDENTIALS.sub(r"\1***@", SECRET_SHAPES.sub(REDACTED, value))
    return value if len(value) <= MAX_TEXT_CHARS else value[:MAX_TEXT_CHARS] + "…"


def redact(name: str, value: Any) -> Any:
    """`value` of the field `name` as a record may hold it (builtins, no secret)."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    if isinstance(value, dict):
        return {str(k): redact(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if len(items) > MAX_LIST_ITEMS:
            return f"<{len(items)} items>"
        return [redact(name, v) for v in items]
    if isinstance(value, bytes):
        return REDACTED  # sealed blobs and raw secrets: never written down
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(name, str(value))
