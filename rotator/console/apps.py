"""App pages: per-app tokens with their own allowlist and daily limit (store/apps.py)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from rotator.api.state import AppState
from rotator.console.auth import TENANT_PAGES, State, TenantId
from rotator.console.forms import FormErrors, address_list, optional_int, text
from rotator.console.messages import field_error
from rotator.console.pages import page, see_other
from rotator.domain.errors import InvalidField
from rotator.store import apps as store

NOTICES = {"deleted": "App deleted: its token stopped working."}


async def render(
    request: Request, state: AppState, tenant: str, *, status: int = 200, **extra: object
) -> Response:
    context = {
        "title": "Apps",
        "section": "apps",
        "apps": await store.list_apps(state.redis, tenant),
        "values": {},
        "errors": FormErrors(),
        "notice": NOTICES.get(request.query_params.get("done", "")),
    }
    context.update(extra)
    return page("apps.html", status=status, **context)


class AppPages(Controller):
    path = "/app/apps"
    dependencies = TENANT_PAGES

    @get("/", include_in_schema=False)
    async def list_apps(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        return await render(request, app_state, tenant)

    @post("/", include_in_schema=False)
    async def create(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        form = await request.form()
        values = {n: text(form, n) for n in ("name", "ip_allowlist", "max_daily_requests")}
        try:
            created = await store.add_app(
                app_state.redis,
                app_state.durability,
                tenant,
                name=values["name"],
                ip_allowlist=address_list(form, "ip_allowlist"),
                max_daily_requests=optional_int(form, "max_daily_requests"),
                now_ms=app_state.clock(),
            )
        except InvalidField as exc:
            field, message = field_error(exc, "name")
            return await render(
                request,
                app_state,
                tenant,
                status=400,
                values=values,
                errors=FormErrors(field, message),
            )
        # shown in this response only: it is stored hashed and cannot be shown again
        return await render(request, app_state, tenant, created=created)

    @post("/{app_id:int}/delete", include_in_schema=False)
    async def delete(
        self, request: Request, tenant: TenantId, app_id: FromPath[int], app_state: State
    ) -> Response:
        await store.delete_app(app_state.redis, app_state.durability, tenant, app_id)
        return see_other(request, "/app/apps?done=deleted")
