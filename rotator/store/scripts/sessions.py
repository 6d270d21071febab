"""Wrappers of the console's session scripts and the sign-in throttle."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_SESSION_OPEN = load("session_open")
_SESSIONS_REVOKE = load("sessions_revoke")
_SIGNIN_ATTEMPT = load("signin_attempt")


def session_open(
    tenant: str, secret_hash: str, *, admin_hash: str, now_ms: int, idle_ms: int, max_ms: int
) -> Call[int]:
    """Open a tenant's session: how many of its sessions are live, this one included; -1
    (none opened) when the tenant's admin token is no longer the one hashed `admin_hash`."""
    return Call(
        _SESSION_OPEN,
        (keys.session(tenant, secret_hash), keys.sessions(tenant), keys.tenant(tenant)),
        (secret_hash, now_ms, idle_ms, max_ms, keys.session(tenant, ""), admin_hash),
        decode.integer,
    )


def sessions_revoke(tenant: str) -> Call[int]:
    """End every session of a tenant: how many were live."""
    return Call(
        _SESSIONS_REVOKE, (keys.sessions(tenant),), (keys.session(tenant, ""),), decode.integer
    )


class SigninWindow(NamedTuple):
    attempts: int
    left_ms: int


def _window(reply: Any) -> SigninWindow:
    return SigninWindow(int(reply[0]), int(reply[1]))


def signin_attempt(
    client_ip: str, *, window_ms: int, count: Literal[1, 0, -1] = 1
) -> Call[SigninWindow]:
    """Count a sign-in attempt of `client_ip` (`count` 1), take back a successful one (-1),
    or judge one whose token is known right without counting it (0): the attempts in its
    window and the ms left."""
    return Call(_SIGNIN_ATTEMPT, (keys.signin_failures(client_ip),), (window_ms, count), _window)
