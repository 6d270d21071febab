"""Operator pages (/app/operator): tenants list and creation.

Signed in with ROTATOR_ADMIN_TOKEN. Each action is one handler on `OperatorPages` and one
form in the tenants page's row or create section: adding rename, suspend, delete or
admin-token reissue (a later issue) means a handler calling the store and a form.
"""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post

from rotator.api.state import AppState
from rotator.console.auth import OPERATOR_PAGES, OPERATOR_PATH, State, operator_signed_in
from rotator.console.forms import FormErrors, text
from rotator.console.messages import field_error
from rotator.console.pages import page
from rotator.domain.errors import InvalidField
from rotator.store import tenants


async def render(state: AppState, *, status: int = 200, **extra: object) -> Response:
    context = {
        "title": "Tenants",
        "tenants": await tenants.list_tenants(state.redis),
        "values": {},
        "errors": FormErrors(),
    }
    context.update(extra)
    return page("operator.html", status=status, **context)


class OperatorPages(Controller):
    path = OPERATOR_PATH
    guards = (operator_signed_in,)
    dependencies = OPERATOR_PAGES

    @get("/", include_in_schema=False)
    async def tenants_page(self, app_state: State) -> Response:
        return await render(app_state)

    @post("/tenants", include_in_schema=False)
    async def create_tenant(self, request: Request, app_state: State) -> Response:
        form = await request.form()
        values = {"name": text(form, "name"), "demo": text(form, "demo") == "1"}
        try:
            created = await tenants.create_tenant(
                app_state.redis,
                app_state.durability,
                name=values["name"],
                demo=bool(values["demo"]),
                now_ms=app_state.clock(),
            )
        except InvalidField as exc:
            field, message = field_error(exc, "name")
            return await render(
                app_state, status=400, values=values, errors=FormErrors(field, message)
            )
        # both tokens in this response only: they are stored as hashes
        return await render(app_state, created=created)
