"""Operator endpoints (`ROTATOR_ADMIN_TOKEN`): create, list, show, change and delete
tenants, and reissue a tenant's admin token."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from rotator.api.auth import OperatorBase, State
from rotator.api.openapi import BODY, CONFLICT, NOT_FOUND, errors
from rotator.api.schemas import TenantCreate, TenantStatusPatch
from rotator.domain import tokens
from rotator.domain.errors import NotFound
from rotator.domain.records import (
    AdminToken,
    TenantCreated,
    TenantDeletion,
    TenantDetail,
    TenantSummary,
)
from rotator.store import tenant_deletion, tenants


def known_id(tenant_id: str) -> str:
    """A path's tenant id; one that cannot be an id is as unknown as a missing one."""
    if not tokens.is_tenant_id(tenant_id):
        raise NotFound("tenant not found")
    return tenant_id


class OperatorController(OperatorBase):
    path = "/v1/admin"
    tags = ("operator",)

    @post(
        "/tenants",
        summary="Create a tenant (its tokens are shown once)",
        description="`client_token` imports the client token the tenant already uses with the "
        "hosted service (400 unless 20-200 of `A-Z a-z 0-9 - _`, or if it has the form of one "
        "of ours; 409 if another tenant or app holds it).",
        responses=errors(*BODY, CONFLICT),
    )
    async def create_tenant(self, data: JSONBody[TenantCreate], app_state: State) -> TenantCreated:
        return await app_state.call(
            tenants.create_tenant, name=data.name, demo=data.demo, client_token=data.client_token
        )

    @get(
        "/tenants",
        summary="List every tenant with its counts, oldest first",
        description="Counts: services, provider keys, apps and today's deliveries (UTC day).",
        responses=errors(),
    )
    async def list_tenants(self, app_state: State) -> list[TenantSummary]:
        return await app_state.call(tenants.list_tenants)

    @get(
        "/tenants/{tenant_id:str}",
        summary="One tenant: its settings and counts",
        responses=errors(NOT_FOUND),
    )
    async def show_tenant(self, tenant_id: FromPath[str], app_state: State) -> TenantDetail:
        return await app_state.call(tenants.get_tenant_detail, known_id(tenant_id))

    @patch(
        "/tenants/{tenant_id:str}",
        summary="Rename, suspend or resume a tenant",
        description="`suspended: true` takes effect at once: the tenant's client and app "
        "tokens get `403 invalid token`, its admin token reads but every write answers "
        '`403 {"error": "tenant suspended"}`. Its data is kept; `false` resumes it.',
        responses=errors(*BODY, NOT_FOUND),
    )
    async def change_tenant(
        self, tenant_id: FromPath[str], data: JSONBody[TenantStatusPatch], app_state: State
    ) -> TenantDetail:
        return await app_state.call(
            tenants.update_tenant_status, known_id(tenant_id), **msgspec.structs.asdict(data)
        )

    @delete(
        "/tenants/{tenant_id:str}",
        status_code=200,
        summary="Delete a tenant and all its data",
        description="`confirm` must repeat the id (400 otherwise). Its tokens stop working "
        "before the answer. 200 `deleted`: every key of the tenant is gone. 202 `deleting`: "
        "a big tenant; the worker removes the rest (DELETE again resumes it too).",
        responses={
            **errors(NOT_FOUND),
            202: ResponseSpec(
                data_container=TenantDeletion,
                description="Tokens revoked and the tenant invisible; its keys are being "
                "removed in the background",
            ),
        },
    )
    async def delete_tenant(
        self,
        tenant_id: FromPath[str],
        app_state: State,
        confirm: Annotated[str, QueryParameter(description="the tenant's id again", max_length=64)],
    ) -> Response[TenantDeletion]:
        done = await app_state.call(tenant_deletion.delete_tenant, tenant_id, confirm=confirm)
        return Response(done, status_code=200 if done.state == "deleted" else 202)

    @post(
        "/tenants/{tenant_id:str}/admin-token",
        status_code=200,
        summary="Issue a new admin token for a tenant; the previous one stops working at once",
        description="Every console session signed in with the old token ends too. Works "
        "for a suspended tenant.",
        responses=errors(NOT_FOUND),
    )
    async def new_admin_token(self, tenant_id: FromPath[str], app_state: State) -> AdminToken:
        return await app_state.call(tenants.issue_admin_token, known_id(tenant_id))
