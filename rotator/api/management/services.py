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
        return await store.create_service(
            app_state.redis,
            app_state.durability,
            tenant,
            **msgspec.structs.asdict(data),
            now_ms=app_state.clock(),
        )

    @get("/", summary="List services", responses=errors())
    async def list(self, tenant: TenantId, app_state: State) -> list[Service]:
        return await store.list_services(app_state.redis, tenant, now_ms=app_state.clock())

    @get("/{slug:str}", summary="Show a service", responses=errors(NOT_FOUND))
    async def show(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> Service:
        return await store.get_service(app_state.redis, tenant, slug, now_ms=app_state.clock())

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
        return await store.update_service(
            app_state.redis,
            app_state.durability,
            tenant,
            slug,
            **msgspec.structs.asdict(data),
            now_ms=app_state.clock(),
        )

    @delete("/{slug:str}", summary="Delete a service and all its keys", responses=errors(NOT_FOUND))
    async def remove(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> None:
        await store.delete_service(app_state.redis, app_state.durability, tenant, slug)
