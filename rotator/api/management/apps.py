"""A tenant's client apps: per-app tokens with their own allowlist and daily limit."""

from __future__ import annotations

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, NOT_FOUND, errors
from rotator.api.schemas import AppCreate, AppPatch
from rotator.domain.records import App, AppCreated, AppToken
from rotator.store import apps as store


class AppController(TenantAdminBase):
    path = "/v1/apps"
    tags = ("apps",)

    @post("/", summary="Create an app (its token is shown once)", responses=errors(*BODY))
    async def create(
        self, tenant: TenantId, data: JSONBody[AppCreate], app_state: State
    ) -> AppCreated:
        return await app_state.call(store.add_app, tenant, **msgspec.structs.asdict(data))

    @get("/", summary="List apps", responses=errors())
    async def list(self, tenant: TenantId, app_state: State) -> list[App]:
        return await app_state.call(store.list_apps, tenant)

    @get("/{app_id:int}", summary="Show an app", responses=errors(NOT_FOUND))
    async def show(self, tenant: TenantId, app_id: FromPath[int], app_state: State) -> App:
        return await app_state.call(store.get_app, tenant, app_id)

    @patch(
        "/{app_id:int}",
        summary="Rename, re-limit, change the allowlist of, suspend or resume an app",
        description="Takes effect with the next request: a suspended app's token gets "
        "`403 invalid token` until `suspended` is false again.",
        responses=errors(*BODY, NOT_FOUND),
    )
    async def change(
        self, tenant: TenantId, app_id: FromPath[int], data: JSONBody[AppPatch], app_state: State
    ) -> App:
        return await app_state.call(
            store.update_app, tenant, app_id, **msgspec.structs.asdict(data)
        )

    @post(
        "/{app_id:int}/token",
        status_code=200,
        summary="Issue a new app token; the previous one stops working at once",
        responses=errors(NOT_FOUND),
    )
    async def new_token(
        self, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> AppToken:
        return await app_state.call(store.issue_app_token, tenant, app_id)

    @delete(
        "/{app_id:int}",
        summary="Delete an app; its token stops working at once",
        responses=errors(NOT_FOUND),
    )
    async def remove(self, tenant: TenantId, app_id: FromPath[int], app_state: State) -> None:
        await app_state.call(store.delete_app, tenant, app_id)
