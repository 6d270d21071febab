"""Console sessions (tenant and operator) and the per-IP throttle of failed sign-ins.

Signing in to the console exchanges a token for a server-side session: the browser's
cookie holds only a random 256-bit secret, and Valkey holds the secret's SHA-256 with
the session's times (schema in keys.py). A tenant's sessions live under its hash tag, so
`revoke_tenant_sessions` (admin token reissued) is one script on one slot.

Two limits end a session: idle (no request for `idle_ms`) and absolute (`max_ms` after
sign-in). Both are checked against the caller's clock (tests inject one); the key's
PEXPIRE only tidies up. `seen_ms` and the expiry are refreshed at most once per
SESSION_TOUCH_INTERVAL_MS, so browsing costs one read per page, not a write per click.
"""

from __future__ import annotations

import secrets
from typing import NamedTuple

import msgspec

from rotator.domain.tokens import hash_secret
from rotator.store import keys
from rotator.store.connection import Redis, as_str
from rotator.store.scripts import sessions as scripts
from rotator.store.scripts.call import Plain, run
from rotator.tuning import SESSION_TOUCH_INTERVAL_MS, SIGNIN_MAX_FAILURES, SIGNIN_WINDOW_MS


class SessionTimes(msgspec.Struct, frozen=True, kw_only=True):
    created_ms: int
    seen_ms: int


def new_secret() -> str:
    """The cookie's secret: 256 random bits, URL-safe (no '.', which separates the tenant)."""
    return secrets.token_urlsafe(32)


async def open_tenant_session(
    redis: Redis, tenant: str, *, admin_hash: str, now_ms: int, idle_ms: int, max_ms: int
) -> str | None:
    """Start a session for `tenant`, signed in with the admin token hashed `admin_hash`;
    returns its secret (the cookie's), or None when that token has been reissued since it
    was checked (the check is repeated in the script that opens the session)."""
    secret = new_secret()
    secret_hash = hash_secret(secret)
    opened = await run(
        Plain(redis),
        scripts.session_open(
            tenant, secret_hash, admin_hash=admin_hash, now_ms=now_ms, idle_ms=idle_ms,
            max_ms=max_ms,
        ),
    )  # fmt: skip
    return None if opened < 0 else secret


def _live(times: list, now_ms: int, idle_ms: int, max_ms: int) -> SessionTimes | None:
    created, seen = (as_str(v) for v in times)
    if not created or not seen:
        return None
    session = SessionTimes(created_ms=int(created), seen_ms=int(seen))
    if now_ms - session.created_ms >= max_ms or now_ms - session.seen_ms >= idle_ms:
        return None
    return session


async def _check(
    redis: Redis, key: str, now_ms: int, idle_ms: int, max_ms: int, opened_by: str = ""
) -> bool:
    """Whether the session `key` is live (and note its use); with `opened_by`, also that it
    was opened with that credential's hash (an operator session outlives no token change)."""
    created, seen, by = await redis.hmget(key, ["created_ms", "seen_ms", "by"])
    session = _live([created, seen], now_ms, idle_ms, max_ms)
    if session is None or (opened_by and as_str(by) != opened_by):
        await redis.delete(key)  # expired by our clock, or its token changed: gone for good
        return False
    # refreshed at most once a minute, but at least twice per idle limit: with a limit of
    # one minute, a minute's interval would never refresh it (the idle check comes first)
    if now_ms - session.seen_ms >= min(SESSION_TOUCH_INTERVAL_MS, idle_ms // 2):
        # two pages loaded at once may both refresh: the same write twice, harmless
        await _write(redis, key, {"seen_ms": now_ms}, idle_ms)
    return True


async def _write(redis: Redis, key: str, fields: dict[str, int | str], idle_ms: int) -> None:
    """Set `fields` of the session `key` and restart its idle expiry, in one round trip
    (one key: one slot on a cluster)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, idle_ms)
        await pipe.execute()


async def check_tenant_session(
    redis: Redis, tenant: str, secret: str, *, now_ms: int, idle_ms: int, max_ms: int
) -> bool:
    """Whether the cookie's secret names a live session of `tenant` (and note its use)."""
    return await _check(redis, keys.session(tenant, hash_secret(secret)), now_ms, idle_ms, max_ms)


async def close_tenant_session(redis: Redis, tenant: str, secret: str) -> None:
    """Sign out: the session is gone, whatever the cookie does next."""
    secret_hash = hash_secret(secret)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(keys.session(tenant, secret_hash))
        pipe.srem(keys.sessions(tenant), secret_hash)
        await pipe.execute()


async def revoke_tenant_sessions(redis: Redis, tenant: str) -> int:
    """End every console session of a tenant; returns how many were live."""
    return await run(Plain(redis), scripts.sessions_revoke(tenant))


# --- operator ------------------------------------------------------------------------------
# An operator session records the hash of the ROTATOR_ADMIN_TOKEN it was opened with and is
# live only while the API runs with that token: changing a leaked token ends its sessions.
async def open_operator_session(
    redis: Redis, operator_token: str, *, now_ms: int, idle_ms: int
) -> str:
    """Start an operator session (the caller checked `operator_token`); returns its secret."""
    secret = new_secret()
    key = keys.operator_session(hash_secret(secret))
    fields = {"created_ms": now_ms, "seen_ms": now_ms, "by": hash_secret(operator_token)}
    await _write(redis, key, fields, idle_ms)
    return secret


async def check_operator_session(
    redis: Redis, secret: str, operator_token: str, *, now_ms: int, idle_ms: int, max_ms: int
) -> bool:
    """Whether the cookie's secret names a live session opened with `operator_token`."""
    key = keys.operator_session(hash_secret(secret))
    return await _check(redis, key, now_ms, idle_ms, max_ms, hash_secret(operator_token))


async def close_operator_session(redis: Redis, secret: str) -> None:
    await redis.delete(keys.operator_session(hash_secret(secret)))


# --- sign-in throttle ----------------------------------------------------------------------
class SigninAttempt(NamedTuple):
    """A counted sign-in attempt: whether its token may be checked, whether a failure now
    uses up the window, and the seconds until the window ends."""

    checked: bool
    last: bool
    wait_s: int


async def claim_signin_attempt(
    redis: Redis, client_ip: str, *, right: bool = False
) -> SigninAttempt:
    """Count a sign-in attempt of `client_ip` before its token is checked. Counted first and
    atomically, so requests sent at once cannot all be checked: at most SIGNIN_MAX_FAILURES
    tokens per window are, and a refused one is never compared (its answer tells nothing).

    `right`: the caller already compared the token (a local compare, no store read) and it
    was right: the attempt is judged by the same rule, after every failure counted before
    it, but not counted, so there is nothing to forgive and calls sent at once with the
    right token cannot use up the window among themselves."""
    call = scripts.signin_attempt(client_ip, window_ms=SIGNIN_WINDOW_MS, count=0 if right else 1)
    window = await run(Plain(redis), call)
    return SigninAttempt(
        checked=window.attempts <= SIGNIN_MAX_FAILURES,
        last=window.attempts >= SIGNIN_MAX_FAILURES,
        wait_s=max(1, -(-window.left_ms // 1000)),
    )


async def forgive_signin_attempt(redis: Redis, client_ip: str) -> None:
    """Take back the attempt of a sign-in that succeeded: only failures use up the window."""
    await run(
        Plain(redis),
        scripts.signin_attempt(client_ip, window_ms=SIGNIN_WINDOW_MS, count=-1),
    )
