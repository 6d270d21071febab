"""A tenant's services: create, list, show, change, delete."""

from __future__ import annotations

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, CONFLICT, NOT_FOUND, errors
from rotator.api.schemas import ServiceCreate, ServicePatch
from rotator.domain.records import Service
from rotator.store import services as store


class ServiceController(TenantAdminBase):
    path = "/v1/services"
    tags = ("services",)

    @post(
        "/",
        summary="Create a service (409 when the slug exists)",
        responses=errors(*BODY, CONFLICT),
    )
    async def create(
        self, tenant: TenantId, data: JSONBody[ServiceCreate], app_state: State
    ) -> Service:
        return await app_state.call(store.create_service, tenant, **msgspec.structs.asdict(data))

    @get("/", summary="List services", responses=errors())
    async def list(self, tenant: TenantId, app_state: State) -> list[Service]:
        return await app_state.call(store.list_services, tenant)

    @get("/{slug:str}", summary="Show a service", responses=errors(NOT_FOUND))
    async def show(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> Service:
        return await app_state.call(store.get_service, tenant, slug)

    @patch(
        "/{slug:str}",
        summary="Change policy or limits",
        description="The slug cannot change: every key's ciphertext is bound to it. "
        "A policy change keeps the manual primary (switching away from manual and back "
        "finds it again) and starts the time policy afresh: from the first key, every "
        "key's lifetime unstarted.",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
    )
    async def change(
        self, tenant: TenantId, slug: FromPath[str], data: JSONBody[ServicePatch], app_state: State
    ) -> Service:
        return await app_state.call(
            store.update_service, tenant, slug, **msgspec.structs.asdict(data)
        )

    @delete("/{slug:str}", summary="Delete a service and all its keys", responses=errors(NOT_FOUND))
    async def remove(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> None:
        await app_state.call(store.delete_service, tenant, slug)
