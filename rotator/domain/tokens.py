"""Bearer tokens: `<kind>_<tenant>[_<app>]_<secret>`.

The prefix names the tenant (and app) so a request finds its tenant's hash slot
without a lookup; only SHA-256 of the secret part is stored, and the delivery
script compares it. Secrets are 256 random bits, so a fast hash is enough (there
is nothing to brute-force that a slow hash would protect).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

ADMIN = "kta"
CLIENT = "krc"
APP = "kra"

# whole-string patterns, used with fullmatch: `$` also matches before a trailing newline
_ID = re.compile(r"[a-z0-9]{1,32}")
_APP_ID = re.compile(r"[0-9]{1,18}")  # str.isdigit() would take '²' and other Unicode digits


class ParsedToken(NamedTuple):
    kind: str
    tenant: str
    app: str  # "" unless kind == APP
    secret_hash: str


class NewToken(NamedTuple):
    token: str
    secret_hash: str


def is_tenant_id(text: str) -> bool:
    """Whether `text` has the form of a tenant id (what a token's prefix carries)."""
    return bool(_ID.fullmatch(text))


def new_tenant_id() -> str:
    return secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _mint(*parts: str) -> NewToken:
    secret = secrets.token_urlsafe(32)  # 256 bits
    return NewToken("_".join((*parts, secret)), hash_secret(secret))


def mint_admin(tenant: str) -> NewToken:
    return _mint(ADMIN, tenant)


def mint_client(tenant: str) -> NewToken:
    return _mint(CLIENT, tenant)


def mint_app(tenant: str, app_id: int | str) -> NewToken:
    return _mint(APP, tenant, str(app_id))


def parse(token: str) -> ParsedToken | None:
    """Split a token into its parts; None when malformed (the caller answers 'invalid token')."""
    if len(token) > 256 or token[3:4] != "_":  # `krcAb_…` is no token of ours
        return None
    kind = token[:3]
    if kind == APP:
        parts = token.split("_", 3)
        if len(parts) != 4 or not _APP_ID.fullmatch(parts[2]):
            return None
        _, tenant, app, secret = parts
    elif kind in (CLIENT, ADMIN):
        parts = token.split("_", 2)
        if len(parts) != 3:
            return None
        _, tenant, secret = parts
        app = ""
    else:
        return None
    if not secret or not _ID.fullmatch(tenant):
        return None
    return ParsedToken(kind, tenant, app, hash_secret(secret))


IMPORTED_LENGTH = (20, 200)
"""How long a token imported from the hosted service may be (SPEC §7), in characters."""
_IMPORTED = re.compile(r"[A-Za-z0-9_-]+")
"""The URL-safe alphabet (RFC 4648 §5) of an imported token: the hosted guide's demo token
is alphanumeric, and `-`/`_` pass through a query string unescaped like the rest."""


def imported_problem(value: str) -> str | None:
    """Why `value` cannot be imported as a client or app token (None: it can). It must be
    20-200 URL-safe characters, and must not parse as one of our tokens: a string of our
    form is always read as ours (`parse`), so importing it would make it ambiguous."""
    low, high = IMPORTED_LENGTH
    if not low <= len(value) <= high:
        return f"must be {low} to {high} characters, not {len(value)}"
    if not _IMPORTED.fullmatch(value):
        return "may hold only the URL-safe characters A-Z a-z 0-9 - _"
    if parse(value) is not None:
        return "has the form of a token this service issues (kta_/krc_/kra_...); choose another"
    return None


def could_be_imported(token: str) -> bool:
    """Whether a presented token may be an imported one (checked before any lookup, so a
    malformed one costs no round trip)."""
    low, high = IMPORTED_LENGTH
    return low <= len(token) <= high and bool(_IMPORTED.fullmatch(token))


def hash_imported(token: str) -> str:
    """An imported token's stored hash: SHA-256 of the whole token (it has no prefix: all of it
    is secret), compared by the delivery script exactly as ours are."""
    return hashlib.sha256(token.encode()).hexdigest()


def valid_tenant_id(tenant: str) -> bool:
    return bool(_ID.fullmatch(tenant))


def same_hash(a: str | bytes | None, b: str) -> bool:
    """Constant-time comparison of a stored hash with a computed one."""
    if a is None:
        return False
    if isinstance(a, bytes):
        a = a.decode()
    return hmac.compare_digest(a, b)
