"""A tenant's own settings: allowlist, webhook, client and admin tokens."""

from __future__ import annotations

import msgspec
from litestar import get, patch, post
from litestar.params import JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, CONFLICT, OptionalBodyOperation, errors
from rotator.api.schemas import ClientTokenIssue, TenantPatch
from rotator.domain.records import AdminToken, ClientToken, Tenant
from rotator.store import tenants


class TenantController(TenantAdminBase):
    path = "/v1/tenant"
    tags = ("tenant",)

    @get(
        "/",
        summary="The tenant's settings (never a token or the webhook secret)",
        responses=errors(),
    )
    async def show(self, tenant: TenantId, app_state: State) -> Tenant:
        return await app_state.call(tenants.get_tenant, tenant)

    @patch(
        "/",
        summary="Change settings",
        description="Setting a webhook_url where no secret exists generates one: it is in "
        "this response only (webhook_secret).",
        responses=errors(*BODY, CONFLICT),
    )
    async def change(
        self, tenant: TenantId, data: JSONBody[TenantPatch], app_state: State
    ) -> Tenant:
        return await app_state.call(
            tenants.update_tenant,
            tenant,
            **msgspec.structs.asdict(data),
            webhook_allow_private=app_state.settings.webhook_allow_private,
        )

    @post(
        "/client-token",
        status_code=200,
        summary="Issue a new client token; the previous one stops working at once",
        description="The body is optional: `client_token` imports a token of the tenant's "
        "choosing (400 unless 20-200 of `A-Z a-z 0-9 - _`, or if it has the form of one of "
        "ours; 409 if another tenant or app holds it); without it the new token is one of ours.",
        responses=errors(*BODY, CONFLICT),
        operation_class=OptionalBodyOperation,
    )
    async def new_client_token(
        self, tenant: TenantId, app_state: State, data: JSONBody[ClientTokenIssue | None] = None
    ) -> ClientToken:
        chosen = data.client_token if data else None
        return await app_state.call(tenants.issue_client_token, tenant, chosen)

    @post(
        "/admin-token",
        status_code=200,
        summary="Issue a new admin token; the one used for this call stops working at once",
        description="Every console session of the tenant ends too. Use the token in this "
        "answer from now on: it is shown once.",
        responses=errors(CONFLICT),
    )
    async def new_admin_token(self, tenant: TenantId, app_state: State) -> AdminToken:
        return await app_state.call(tenants.issue_admin_token, tenant)
