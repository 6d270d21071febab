"""Operator pages (/app/operator): the tenants list with their counts, creation, and each
tenant's page: rename, suspend or resume, a new admin token, delete.

Signed in with ROTATOR_ADMIN_TOKEN. Each action is one handler calling the store function
its API twin calls (rotator/api/management/operator.py), so the rules are the API's.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from rotator.api.state import AppState
from rotator.console.auth import OPERATOR_PAGES, OPERATOR_PATH, State, operator_signed_in
from rotator.console.forms import chosen_token, text
from rotator.console.pages import form_page, refused_form, see_other
from rotator.domain import tokens
from rotator.domain.errors import Conflict, InvalidField, NotFound
from rotator.store import tenant_deletion, tenants

NOTICES = {
    "deleted": "Tenant deleted: its tokens stopped working and its data is gone.",
    "deleting": "Tenant deleted: its tokens stopped working; the worker is removing the rest "
    "of its data in the background.",
}
TENANT_NOTICES = {
    "renamed": "Tenant renamed.",
    "suspended": "Tenant suspended: its client and app tokens get 403 invalid token, and its "
    "admin reads but cannot change anything, until you resume it.",
    "resumed": "Tenant resumed: everything works again.",
}


def tenant_path(tenant: str) -> str:
    return f"{OPERATOR_PATH}/tenants/{tenant}"


async def render(request: Request, state: AppState, *, status: int = 200, **extra: Any) -> Response:
    records = await state.call(tenants.list_tenants)
    context = {"title": "Tenants", "section": "tenants", "tenants": records, **extra}
    return form_page(request, "operator.html", NOTICES, status=status, **context)


async def render_tenant(
    request: Request, state: AppState, tenant: str, *, status: int = 200, **extra: Any
) -> Response:
    if not tokens.is_tenant_id(tenant):
        raise NotFound("tenant not found")
    detail = await state.call(tenants.get_tenant_detail, tenant)
    context = {"title": f"Tenant {detail.name}", "tenant": detail, **extra}
    return form_page(request, "operator_tenant.html", TENANT_NOTICES, status=status, **context)


async def set_suspended(
    request: Request, state: AppState, tenant: str, suspended: bool
) -> Response:
    await state.call(tenants.update_tenant_status, tenant, suspended=suspended)
    done = "suspended" if suspended else "resumed"
    return see_other(request, f"{tenant_path(tenant)}?done={done}")


class OperatorPages(Controller):
    path = OPERATOR_PATH
    guards = (operator_signed_in,)
    dependencies = OPERATOR_PAGES

    @get("/", include_in_schema=False)
    async def tenants_page(self, request: Request, app_state: State) -> Response:
        return await render(request, app_state)

    @post("/tenants", include_in_schema=False)
    async def create_tenant(self, request: Request, app_state: State) -> Response:
        form = await request.form()
        values = {"name": text(form, "name"), "demo": text(form, "demo") == "1"}
        try:
            created = await app_state.call(
                tenants.create_tenant,
                name=values["name"],
                demo=bool(values["demo"]),
                client_token=chosen_token(form, "client_token"),
            )
        except (InvalidField, Conflict) as exc:
            # the token typed is never shown again, not even in the refused form
            field = "client_token" if isinstance(exc, Conflict) else "name"
            return await render(request, app_state, **refused_form(exc, field, values))
        # both tokens in this response only: they are stored as hashes
        return await render(request, app_state, created=created)

    @get("/tenants/{tenant:str}", include_in_schema=False)
    async def tenant_page(
        self, request: Request, tenant: FromPath[str], app_state: State
    ) -> Response:
        return await render_tenant(request, app_state, tenant)

    @post("/tenants/{tenant:str}/rename", include_in_schema=False)
    async def rename(self, request: Request, tenant: FromPath[str], app_state: State) -> Response:
        name = text(await request.form(), "name")
        try:
            await app_state.call(tenants.update_tenant_status, tenant, name=name)
        except InvalidField as exc:
            refusal = refused_form(exc, "name", {"name": name})
            return await render_tenant(request, app_state, tenant, **refusal)
        return see_other(request, tenant_path(tenant) + "?done=renamed")

    @post("/tenants/{tenant:str}/suspend", include_in_schema=False)
    async def suspend(self, request: Request, tenant: FromPath[str], app_state: State) -> Response:
        return await set_suspended(request, app_state, tenant, True)

    @post("/tenants/{tenant:str}/resume", include_in_schema=False)
    async def resume(self, request: Request, tenant: FromPath[str], app_state: State) -> Response:
        return await set_suspended(request, app_state, tenant, False)

    @post("/tenants/{tenant:str}/admin-token", include_in_schema=False)
    async def admin_token(
        self, request: Request, tenant: FromPath[str], app_state: State
    ) -> Response:
        issued = await app_state.call(tenants.issue_admin_token, tenant)
        # in this response only: it is stored as a hash
        return await render_tenant(request, app_state, tenant, admin_token=issued.admin_token)

    @post("/tenants/{tenant:str}/delete", include_in_schema=False)
    async def delete(self, request: Request, tenant: FromPath[str], app_state: State) -> Response:
        confirm = text(await request.form(), "confirm").strip()
        try:
            done = await app_state.call(tenant_deletion.delete_tenant, tenant, confirm=confirm)
        except InvalidField as exc:
            refusal = refused_form(exc, "confirm", {"confirm": confirm})
            return await render_tenant(request, app_state, tenant, **refusal)
        return see_other(request, f"{OPERATOR_PATH}?done={done.state}")
