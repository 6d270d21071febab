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
    if len(token) > 256:
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


def valid_tenant_id(tenant: str) -> bool:
    return bool(_ID.fullmatch(tenant))


def same_hash(a: str | bytes | None, b: str) -> bool:
    """Constant-time comparison of a stored hash with a computed one."""
    if a is None:
        return False
    if isinstance(a, bytes):
        a = a.decode()
    return hmac.compare_digest(a, b)
