"""A tenant's client apps: per-app tokens with their own allowlist and daily limit."""

from __future__ import annotations

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, CONFLICT, NOT_FOUND, OptionalBodyOperation, errors
from rotator.api.schemas import AppCreate, AppPatch, AppTokenIssue
from rotator.domain.records import App, AppCreated, AppToken
from rotator.store import apps as store


class AppController(TenantAdminBase):
    path = "/v1/apps"
    tags = ("apps",)

    @post(
        "/",
        summary="Create an app (its token is shown once)",
        description="`app_token` imports the token the app already uses with the hosted "
        "service (400 unless 20-200 of `A-Z a-z 0-9 - _`, or if it has the form of one of "
        "ours; 409 if another tenant or app holds it).",
        responses=errors(*BODY, CONFLICT),
    )
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
        description="The body is optional: `app_token` imports a token of the tenant's "
        "choosing (400 unless 20-200 of `A-Z a-z 0-9 - _`, or if it has the form of one of "
        "ours; 409 if another tenant or app holds it); without it the new token is one of ours.",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
        operation_class=OptionalBodyOperation,
    )
    async def new_token(
        self,
        tenant: TenantId,
        app_id: FromPath[int],
        app_state: State,
        data: JSONBody[AppTokenIssue | None] = None,
    ) -> AppToken:
        chosen = data.app_token if data else None
        return await app_state.call(store.issue_app_token, tenant, app_id, chosen)

    @delete(
        "/{app_id:int}",
        summary="Delete an app; its token stops working at once",
        responses=errors(NOT_FOUND),
    )
    async def remove(self, tenant: TenantId, app_id: FromPath[int], app_state: State) -> None:
        await app_state.call(store.delete_app, tenant, app_id)
