"""Who may call the management API: the operator, or a tenant's admin.

- Operator: `Authorization: Bearer <ROTATOR_ADMIN_TOKEN>`; with no token configured
  the operator API answers 401 to everyone.
- Tenant admin: `Authorization: Bearer kta_<tenant>_<secret>`; the tenant comes from
  the token's prefix and the secret's SHA-256 must match the stored hash.

Both checks are guards: Litestar runs a route's guards before it parses path, query
or body parameters, so an unauthenticated request never has its body read or decoded
(401 first). Controllers get them by subclassing OperatorBase or
TenantAdminBase, so a route cannot be declared without its check.

Every failure is the same 401, whatever was wrong, so a caller learns nothing
about which tenants exist. A suspended tenant's admin token still reads (GET); any
other method answers `403 {"error": "tenant suspended"}`, decided here once for every
tenant-admin route (and documented on each write route by TenantAdminBase).
"""

from __future__ import annotations

import hmac
from typing import NoReturn

from litestar import Controller, Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import SkipValidation

from rotator import request_scope
from rotator.api.body import refuse_unread_body
from rotator.api.openapi import FORBIDDEN, TOO_MANY, error_spec
from rotator.api.state import AppState
from rotator.domain import tokens
from rotator.domain.audit import Actor, fingerprint
from rotator.domain.errors import SigninThrottled, TenantSuspended, Unauthorized
from rotator.store import audit, sessions, tenants

_TENANT = "rotator.tenant"
"""Connection-state key where the tenant-admin guard leaves the authenticated tenant."""
READS = frozenset(("GET", "HEAD"))
"""The methods a suspended tenant's admin token may still use."""


def bearer_token(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization")
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


def app_state(connection: ASGIConnection) -> AppState:
    return connection.app.state.rotator


async def refuse(connection: ASGIConnection, message: str | None = None) -> NoReturn:
    """Answer 401, counted for the client's address (never recorded one by one: anyone could
    fill the audit log; rotator/store/audit.py count_unauthenticated)."""
    state = app_state(connection)
    scope = request_scope.current()
    address = scope.address if scope is not None else ""
    await audit.count_unauthenticated(state.redis, address, state.now_ms())
    raise Unauthorized(message)


def _address() -> str:
    scope = request_scope.current()
    return scope.address if scope is not None else ""


async def is_operator(connection: ASGIConnection) -> bool:
    """Whether the request carries the operator token (constant-time compare).

    The operator token is the one secret a person may choose, and it opens every tenant:
    each check is a sign-in attempt of the client's address, on the budget the console's
    sign-in form uses (store/sessions.py), so the API is no faster way to guess it. Only a
    wrong token is counted; past the budget, SigninThrottled (429), the right token
    included, until the window ends."""
    state = app_state(connection)
    expected = state.settings.admin_token
    given = bearer_token(connection)
    if expected is None or given is None or tokens.parse(given) is not None:
        # a token of ours (kta_, krc_, kra_) is a tenant's, never the operator's
        # (settings refuse one of that shape): a tenant's mistake, not a guess
        return False
    # compared before it is judged, unlike the console's form, so a right token is judged
    # without being counted (one script, no forgive): a script's parallel calls cannot lock
    # its address out. Past the budget the answer is 429 whatever the compare said, right
    # and wrong tokens cost the same one script call, and the compare is local and
    # constant-time: nothing tells a throttled guess whether it was right.
    right = hmac.compare_digest(given.encode(), expected.encode())
    attempt = await state.call(sessions.claim_signin_attempt, _address(), right=right)
    if not attempt.checked or (not right and attempt.last):
        raise SigninThrottled(attempt.wait_s)
    if not right:
        return False
    request_scope.act_as(
        Actor(
            role="operator", via="api", credential="token:" + fingerprint(given), address=_address()
        )
    )
    return True


OPERATOR_API_OFF = "the operator API is off: start the service with ROTATOR_ADMIN_TOKEN set"


async def require_operator(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard of /v1/admin/*."""
    if not await is_operator(connection):
        off = app_state(connection).settings.admin_token is None
        await refuse(connection, OPERATOR_API_OFF if off else "invalid or missing operator token")


async def require_tenant_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard of tenant-admin routes: checks the admin token and, for a write, that the
    tenant is not suspended (one HMGET); leaves the tenant id in the connection state for
    the `tenant` dependency."""
    given = bearer_token(connection)
    parsed = tokens.parse(given) if given else None
    if parsed is None or parsed.kind != tokens.ADMIN:
        await refuse(connection)
    access = await tenants.admin_access(app_state(connection).redis, parsed.tenant)
    if not tokens.same_hash(access.token_hash, parsed.secret_hash):
        await refuse(connection)
    request_scope.act_as(
        Actor(
            role="tenant_admin",
            via="api",
            credential="token:" + parsed.secret_hash[:8],
            address=_address(),
        ),
        tenant=parsed.tenant,
    )
    if connection.scope["method"] not in READS:
        # race point: a suspension that lands after this check lets this one write through,
        # as if it had come a moment earlier; deliveries are refused by the script itself
        try:
            tenants.refuse_write_if_suspended(access)
        except TenantSuspended as exc:
            await audit.refused_request(
                app_state(connection),
                parsed.tenant,
                f"{connection.scope['method']} {connection.scope['path']}",
                exc.message,
            )
            raise
    connection.state[_TENANT] = parsed.tenant


def _authenticated_tenant(request: Request) -> str:
    tenant = request.state.get(_TENANT)
    if tenant is None:  # a programming error, not a client's: fail loudly (500 and a log)
        raise RuntimeError("tenant dependency on a route without the require_tenant_admin guard")
    return tenant


def _state(request: Request) -> AppState:
    return app_state(request)


TenantId = NamedDependency[str]
"""Handler parameter `tenant: TenantId`: the authenticated tenant's id."""
State = NamedDependency[SkipValidation[AppState]]
"""Handler parameter `app_state: State`: the process's shared clients and settings."""


_OPERATOR_DEPENDENCIES = {"app_state": Provide(_state, sync_to_thread=False)}
_TENANT_ADMIN_DEPENDENCIES = {
    "tenant": Provide(_authenticated_tenant, sync_to_thread=False),
    "app_state": Provide(_state, sync_to_thread=False),
}


async def require_operator_or_tenant_admin(
    connection: ASGIConnection, handler: BaseRouteHandler
) -> None:
    """Guard of routes both read (GET /v1/audit): the operator token, else a tenant's admin
    token (that tenant's id left for the `viewer` dependency)."""
    if not await is_operator(connection):  # a tenant's token spends no operator budget
        await require_tenant_admin(connection, handler)


def _viewer(request: Request) -> str | None:
    return request.state.get(_TENANT)


Viewer = NamedDependency[str | None]
"""Handler parameter `viewer: Viewer`: the tenant admin's tenant id; None for the operator."""


_VIEWER_DEPENDENCIES = {
    "viewer": Provide(_viewer, sync_to_thread=False),
    "app_state": Provide(_state, sync_to_thread=False),
}


_THROTTLED = error_spec(
    "Too many wrong operator tokens from this address, console sign-ins included "
    '(`{"error": "too many wrong tokens from this address"}`); Retry-After says when to '
    "try again"
)
_SUSPENDED = error_spec('The tenant is suspended (`{"error": "tenant suspended"}`): it only reads')


def _documenting(
    handlers: list[BaseRouteHandler], status: int, spec: ResponseSpec, writes_only: bool = False
) -> list[BaseRouteHandler]:
    """`handlers` (a controller's, Litestar's copies), each documenting the `status` its
    guard answers, so no route can forget it."""
    for handler in handlers:
        if isinstance(handler, HTTPRouteHandler) and not (
            writes_only and handler.http_methods <= READS
        ):
            handler.responses = {**(handler.responses or {}), status: spec}
    return handlers


class OperatorOrTenantAdminBase(Controller):
    """Base of controllers the operator and tenant admins both call: handlers take
    `viewer: Viewer` and `app_state: State`."""

    guards = (require_operator_or_tenant_admin, refuse_unread_body)
    dependencies = _VIEWER_DEPENDENCIES

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        return _documenting(super().get_route_handlers(), TOO_MANY, _THROTTLED)


class OperatorBase(Controller):
    """Base of operator controllers: the operator guard; handlers take `app_state: State`."""

    guards = (require_operator, refuse_unread_body)
    dependencies = _OPERATOR_DEPENDENCIES

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        return _documenting(super().get_route_handlers(), TOO_MANY, _THROTTLED)


class TenantAdminBase(Controller):
    """Base of tenant-admin controllers: the tenant-admin guard; handlers take
    `tenant: TenantId` (already authenticated) and `app_state: State`."""

    guards = (require_tenant_admin, refuse_unread_body)
    dependencies = _TENANT_ADMIN_DEPENDENCIES

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        """Each write route documents the 403 its guard answers for a suspended tenant."""
        return _documenting(super().get_route_handlers(), FORBIDDEN, _SUSPENDED, writes_only=True)
