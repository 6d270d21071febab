"""Who is using the console: a tenant or the operator, by a server-side session.

The cookie `kr_session` holds `<tenant>.<session secret>` and `kr_operator` the operator
session's secret: never a token. Sessions live in Valkey (rotator/store/sessions.py); a
missing, expired or revoked one sends the browser to the sign-in page.

A suspended tenant's pages read as usual, with a banner (`suspended` in the request's
state); every POST is refused here, as the API's guard refuses its writes.
"""

from __future__ import annotations

from typing import Literal

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import SkipValidation

from rotator import request_scope
from rotator.api.auth import READS
from rotator.api.state import AppState
from rotator.console.security import CONSOLE_PATH, came_over_https
from rotator.domain import tokens
from rotator.domain.audit import Actor, fingerprint
from rotator.domain.errors import TenantSuspended
from rotator.store import audit, sessions, tenants

TENANT_COOKIE = "kr_session"
OPERATOR_COOKIE = "kr_operator"
OPERATOR_PATH = CONSOLE_PATH + "/operator"
MAX_SECRET_CHARS = 64
SUSPENDED = "suspended"
"""Request-state key: the signed-in tenant is suspended (its pages show the banner)."""


class SignInRequired(Exception):
    """No live session: the handler answers with the sign-in page's address."""

    def __init__(self, operator: bool = False) -> None:
        super().__init__("sign in required")
        self.operator = operator


def state_of(request: Request) -> AppState:
    return request.app.state.rotator


def idle_ms(state: AppState) -> int:
    return state.settings.session_idle_minutes * 60_000


def max_ms(state: AppState) -> int:
    return state.settings.session_max_hours * 3_600_000


def parse_tenant_cookie(value: str | None) -> tuple[str, str] | None:
    """(tenant, secret) of a well-formed cookie; None otherwise."""
    if not value:
        return None
    tenant, sep, secret = value.partition(".")
    if not sep or not tokens.valid_tenant_id(tenant):
        return None
    if not secret or len(secret) > MAX_SECRET_CHARS:
        return None
    return tenant, secret


def session_cookie(request: Request, name: str, value: str, path: str, max_age_s: int) -> Cookie:
    return Cookie(
        key=name,
        value=value,
        path=path,
        max_age=max_age_s,
        httponly=True,
        samesite="strict",
        secure=came_over_https(request, state_of(request).client_ip),
    )


def expired_cookie(name: str, path: str) -> Cookie:
    return Cookie(key=name, value="", path=path, max_age=0, httponly=True, samesite="strict")


async def console_tenant(request: Request) -> str:
    """Dependency of every tenant page: the signed-in tenant's id."""
    parsed = parse_tenant_cookie(request.cookies.get(TENANT_COOKIE))
    if parsed is None:
        raise SignInRequired()
    tenant, secret = parsed
    state = state_of(request)
    live = await state.call(
        sessions.check_tenant_session, tenant, secret, idle_ms=idle_ms(state), max_ms=max_ms(state)
    )
    if not live:
        raise SignInRequired()
    request_scope.act_as(_actor("tenant_admin", secret), tenant=tenant)
    access = await state.call(tenants.admin_access, tenant)
    if access.suspended:
        request.state[SUSPENDED] = True
        if request.method not in READS:
            try:
                tenants.refuse_write_if_suspended(access)
            except TenantSuspended as exc:
                action = f"{request.method} {request.url.path}"
                await audit.refused_request(state, tenant, action, exc.message)
                raise
    return tenant


async def operator_signed_in(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard of every operator page but sign-in."""
    secret = connection.cookies.get(OPERATOR_COOKIE)
    state: AppState = connection.app.state.rotator
    operator_token = state.settings.admin_token
    if not secret or len(secret) > MAX_SECRET_CHARS or operator_token is None:
        raise SignInRequired(operator=True)
    live = await state.call(
        sessions.check_operator_session,
        secret,
        operator_token,
        idle_ms=idle_ms(state),
        max_ms=max_ms(state),
    )
    if not live:
        raise SignInRequired(operator=True)
    request_scope.act_as(_actor("operator", secret))


def _actor(role: Literal["operator", "tenant_admin"], secret: str) -> Actor:
    """A console user as the audit log names them: by a fingerprint of the session."""
    scope = request_scope.current()
    address = scope.address if scope is not None else ""
    return Actor(
        role=role, via="console", credential="session:" + fingerprint(secret), address=address
    )


def _state(request: Request) -> AppState:
    return state_of(request)


TenantId = NamedDependency[str]
"""Handler parameter `tenant: TenantId`: the signed-in tenant's id."""
State = NamedDependency[SkipValidation[AppState]]
"""Handler parameter `app_state: State`: the process's shared clients and settings."""

TENANT_PAGES = {
    "tenant": Provide(console_tenant),
    "app_state": Provide(_state, sync_to_thread=False),
}
"""Controller `dependencies` of tenant pages: handlers take `tenant: TenantId`, `app_state`."""

OPERATOR_PAGES = {"app_state": Provide(_state, sync_to_thread=False)}
"""Controller `dependencies` of operator pages (with the guard `operator_signed_in`)."""
