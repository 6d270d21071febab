"""App pages: per-app tokens with their own allowlist and daily limit (store/apps.py).

The apps list creates and deletes; each app's page (/app/apps/<id>) edits it, suspends or
resumes it and issues it a new token, each through the store function its API twin calls
(PATCH /v1/apps/{id}, POST /v1/apps/{id}/token), so the rules are the API's.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from rotator.api.state import AppState
from rotator.console.auth import TENANT_PAGES, State, TenantId
from rotator.console.forms import address_list, chosen_token, optional_int, text
from rotator.console.pages import form_page, refused_form, see_other
from rotator.domain.errors import Conflict, InvalidField
from rotator.store import apps as store

NOTICES = {"deleted": "App deleted: its token stopped working."}
APP_NOTICES = {
    "saved": "Changes saved: they apply from the app's next request.",
    "suspended": "App suspended: its token gets 403 invalid token until you resume it.",
    "resumed": "App resumed: its token works again.",
}
FORM_FIELDS = ("name", "ip_allowlist", "max_daily_requests")


async def render(
    request: Request, state: AppState, tenant: str, *, status: int = 200, **extra: Any
) -> Response:
    apps = await state.call(store.list_apps, tenant)
    context = {"title": "Apps", "section": "apps", "apps": apps, **extra}
    return form_page(request, "apps.html", NOTICES, status=status, **context)


async def render_app(
    request: Request, state: AppState, tenant: str, app_id: int, *, status: int = 200, **extra: Any
) -> Response:
    app = await state.call(store.get_app, tenant, app_id)
    context = {"title": f"App {app.name}", "section": "apps", "app": app, **extra}
    return form_page(request, "app.html", APP_NOTICES, status=status, **context)


def typed(form: Any) -> dict[str, str]:
    """What the user typed, to show again if refused."""
    return {n: text(form, n) for n in FORM_FIELDS}


def app_fields(form: Any) -> dict[str, Any]:
    """The store's arguments; InvalidField for a value that is not one (a refused form)."""
    return {
        "name": text(form, "name"),
        "ip_allowlist": address_list(form, "ip_allowlist"),
        "max_daily_requests": optional_int(form, "max_daily_requests"),
    }


class AppPages(Controller):
    path = "/app/apps"
    dependencies = TENANT_PAGES

    @get("/", include_in_schema=False)
    async def list_apps(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        return await render(request, app_state, tenant)

    @post("/", include_in_schema=False)
    async def create(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        form = await request.form()
        values = typed(form)
        try:
            created = await app_state.call(
                store.add_app, tenant, **app_fields(form), app_token=chosen_token(form, "app_token")
            )
        except (InvalidField, Conflict) as exc:
            # the token typed is never shown again, not even in the refused form
            field = "app_token" if isinstance(exc, Conflict) else "name"
            return await render(request, app_state, tenant, **refused_form(exc, field, values))
        # shown in this response only: it is stored hashed and cannot be shown again
        return await render(request, app_state, tenant, created=created)

    @get("/{app_id:int}", include_in_schema=False)
    async def show(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        return await render_app(request, app_state, tenant, app_id)

    @post("/{app_id:int}", include_in_schema=False)
    async def edit(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        form = await request.form()
        values = typed(form)
        try:
            await app_state.call(store.update_app, tenant, app_id, **app_fields(form))
        except InvalidField as exc:
            refusal = refused_form(exc, "name", values)
            return await render_app(request, app_state, tenant, app_id, **refusal)
        return see_other(request, f"/app/apps/{app_id}?done=saved")

    @post("/{app_id:int}/suspend", include_in_schema=False)
    async def suspend(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        return await set_suspended(request, app_state, tenant, app_id, suspended=True)

    @post("/{app_id:int}/resume", include_in_schema=False)
    async def resume(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        return await set_suspended(request, app_state, tenant, app_id, suspended=False)

    @post("/{app_id:int}/token", include_in_schema=False)
    async def reissue_token(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        chosen = chosen_token(await request.form(), "app_token")
        try:
            issued = await app_state.call(store.issue_app_token, tenant, app_id, chosen)
        except (InvalidField, Conflict) as exc:
            refusal = refused_form(exc, "app_token")
            return await render_app(request, app_state, tenant, app_id, **refusal)
        # shown in this response only: it is stored hashed and cannot be shown again
        return await render_app(request, app_state, tenant, app_id, app_token=issued.app_token)

    @post("/{app_id:int}/delete", include_in_schema=False)
    async def delete(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        await app_state.call(store.delete_app, tenant, app_id)
        return see_other(request, "/app/apps?done=deleted")


async def set_suspended(
    request: Request, state: AppState, tenant: str, app_id: int, *, suspended: bool
) -> Response:
    await state.call(store.update_app, tenant, app_id, suspended=suspended)
    done = "suspended" if suspended else "resumed"
    return see_other(request, f"/app/apps/{app_id}?done={done}")
