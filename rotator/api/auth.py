"""Who may call the management API: the operator, or a tenant's admin.

- Operator: `Authorization: Bearer <ROTATOR_ADMIN_TOKEN>`; with no token configured
  the operator API answers 401 to everyone.
- Tenant admin: `Authorization: Bearer kta_<tenant>_<secret>`; the tenant comes from
  the token's prefix and the secret's SHA-256 must match the stored hash.

Every failure is the same 401, whatever was wrong, so a caller learns nothing
about which tenants exist.
"""

from __future__ import annotations

import hmac

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import SkipValidation

from rotator.api.state import AppState
from rotator.domain import tokens
from rotator.domain.errors import Unauthorized
from rotator.store import tenants


def bearer_token(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization")
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


def app_state(connection: ASGIConnection) -> AppState:
    return connection.app.state.rotator


async def require_operator(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard of /v1/admin/*."""
    expected = app_state(connection).settings.admin_token
    given = bearer_token(connection)
    if expected is None or given is None:
        raise Unauthorized("invalid or missing operator token")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("invalid or missing operator token")


async def require_tenant_admin(request: Request) -> str:
    """Dependency: the id of the tenant whose admin token authorised the request."""
    given = bearer_token(request)
    parsed = tokens.parse(given) if given else None
    if parsed is None or parsed.kind != tokens.ADMIN:
        raise Unauthorized()
    stored = await tenants.admin_token_hash(app_state(request).redis, parsed.tenant)
    if not tokens.same_hash(stored, parsed.secret_hash):
        raise Unauthorized()
    return parsed.tenant


def _state(request: Request) -> AppState:
    return app_state(request)


TenantId = NamedDependency[str]
"""Handler parameter `tenant: TenantId`: the authenticated tenant's id."""
State = NamedDependency[SkipValidation[AppState]]
"""Handler parameter `app_state: State`: the process's shared clients and settings."""

TENANT_ADMIN = {
    "tenant": Provide(require_tenant_admin),
    "app_state": Provide(_state, sync_to_thread=False),
}
"""Controller `dependencies` of tenant-admin endpoints: handlers take `tenant: TenantId`
and `app_state: State` (the tenant is authenticated before the handler runs)."""

OPERATOR_DEPENDENCIES = {"app_state": Provide(_state, sync_to_thread=False)}
