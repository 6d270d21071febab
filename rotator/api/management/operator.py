"""Operator endpoints (`ROTATOR_ADMIN_TOKEN`): create and list tenants."""

from __future__ import annotations

from litestar import get, post
from litestar.params import JSONBody

from rotator.api.auth import OperatorBase, State
from rotator.api.openapi import BODY, errors
from rotator.api.schemas import TenantCreate
from rotator.domain.records import TenantCreated, TenantSummary
from rotator.store import tenants


class OperatorController(OperatorBase):
    path = "/v1/admin"
    tags = ("operator",)

    @post(
        "/tenants",
        summary="Create a tenant (its tokens are shown once)",
        responses=errors(*BODY),
    )
    async def create_tenant(self, data: JSONBody[TenantCreate], app_state: State) -> TenantCreated:
        return await tenants.create_tenant(
            app_state.redis,
            app_state.durability,
            name=data.name,
            demo=data.demo,
            now_ms=app_state.clock(),
        )

    @get("/tenants", summary="List every tenant", responses=errors())
    async def list_tenants(self, app_state: State) -> list[TenantSummary]:
        return await tenants.list_tenants(app_state.redis)
