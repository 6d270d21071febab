"""Settings pages: the Client Access Token, the tenant IP allowlist, Webhooks and the
admin token.

Writes go through rotator/store/tenants.py as PATCH /v1/tenant's do (the webhook URL is
vetted by rotator/netguard.py first, exactly as the API does). Tokens and signing
secrets appear in the one response that created them, never again.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post

from rotator.api.state import AppState
from rotator.console.auth import TENANT_COOKIE, TENANT_PAGES, State, TenantId, expired_cookie
from rotator.console.forms import address_list, checked, chosen_token, text
from rotator.console.pages import form_page, page, partial, refused_form, see_other
from rotator.console.security import CONSOLE_PATH
from rotator.domain.errors import Conflict, InvalidField
from rotator.domain.models import DEFAULT_EVENTS, EVENT_TYPES
from rotator.store import tenants
from rotator.store import webhooks as webhook_log
from rotator.store.test_event import send_test_event

DELIVERIES_SHOWN = 20
NOTICES = {
    "allowlist": "IP allowlist saved.",
    "webhook": "Webhook saved.",
    "webhook-removed": "Webhook removed: no more events are sent.",
    "test-sent": "Test event recorded: it appears under Recent deliveries once a worker has "
    "sent it (usually within a second).",
    "test-none": "Set a webhook URL first: there is nowhere to send a test event.",
}
EVENT_HELP = {
    "key.delivered": "every key handed out (many!)",
    "service.limit_warning": "a service reached its early-warning share of its daily limit",
    "service.limit_reached": "a service reached its daily limit",
    "app.limit_reached": "an app reached its own daily limit",
    "key.expired": "a time-policy key's lifetime ended",
    "service.no_active_keys": "a request found no active key",
    "key.rotated": "the current key changed (rotated, expired, disabled, deleted, or at its "
    "own daily limit)",
    "audit.write": "a management write changed something (the audit record)",
    "audit.refused": "a management write was refused (the audit record)",
}


async def render(
    request: Request, state: AppState, tenant: str, *, status: int = 200, **extra: Any
) -> Response:
    record = await state.call(tenants.get_tenant, tenant)
    deliveries = (
        await state.call(webhook_log.deliveries, tenant, limit=DELIVERIES_SHOWN)
    ).deliveries
    context: dict[str, Any] = {
        "title": "Settings",
        "section": "settings",
        "tenant": record,
        "event_types": [(t, EVENT_HELP.get(t, "")) for t in EVENT_TYPES],
        "default_events": DEFAULT_EVENTS,  # checked until a webhook is set: the API's default
        "deliveries": deliveries,
        **extra,
    }
    return form_page(request, "settings.html", NOTICES, status=status, **context)


class SettingsPages(Controller):
    path = "/app/settings"
    dependencies = TENANT_PAGES

    @get("/", include_in_schema=False)
    async def show(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        return await render(request, app_state, tenant)

    @post("/client-token", include_in_schema=False)
    async def reissue_client_token(
        self, request: Request, tenant: TenantId, app_state: State
    ) -> Response:
        chosen = chosen_token(await request.form(), "client_token")
        try:
            issued = await app_state.call(tenants.issue_client_token, tenant, chosen)
        except (InvalidField, Conflict) as exc:
            refusal = refused_form(exc, "client_token")
            return await render(request, app_state, tenant, **refusal)
        return await render(request, app_state, tenant, client_token=issued.client_token)

    @post("/admin-token", include_in_schema=False)
    async def reissue_admin_token(self, tenant: TenantId, app_state: State) -> Response:
        """POST /v1/tenant/admin-token's twin. Every session ends with it, this one too: the
        new token is shown on a page of its own, and the cookie goes."""
        issued = await app_state.call(tenants.issue_admin_token, tenant)
        response = page("admin_token.html", title="New admin token", admin_token=issued.admin_token)
        response.set_cookie(expired_cookie(TENANT_COOKIE, CONSOLE_PATH))
        return response

    @post("/allowlist", include_in_schema=False)
    async def allowlist(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        form = await request.form()
        try:
            await app_state.call(
                tenants.update_tenant, tenant, ip_allowlist=address_list(form, "ip_allowlist")
            )
        except InvalidField as exc:
            values = {"ip_allowlist": text(form, "ip_allowlist")}
            refusal = refused_form(exc, "ip_allowlist", values)
            return await render(request, app_state, tenant, **refusal)
        return see_other(request, "/app/settings?done=allowlist#allowlist")

    @post("/webhook", include_in_schema=False)
    async def webhook(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        form = await request.form()
        url = text(form, "webhook_url").strip()
        events = checked(form, "webhook_events")
        changes: dict[str, Any] = {"webhook_url": url or None}
        if url:
            changes["webhook_events"] = events
        if text(form, "new_secret") == "1":
            changes["webhook_secret"] = tenants.new_webhook_secret()
        try:
            update = await app_state.call(
                tenants.update_tenant,
                tenant,
                **changes,
                webhook_allow_private=app_state.settings.webhook_allow_private,
            )
        except InvalidField as exc:
            values = {"webhook_url": url, "webhook_events": events}
            refusal = refused_form(exc, "webhook_url", values)
            return await render(request, app_state, tenant, **refusal)
        secret = update.webhook_secret or changes.get("webhook_secret")
        if secret:
            # shown in this response only: stored sealed, never shown again
            return await render(
                request, app_state, tenant, webhook_secret=secret, notice=NOTICES["webhook"]
            )
        done = "webhook" if url else "webhook-removed"
        return see_other(request, f"/app/settings?done={done}#webhooks")

    @post("/webhook/test", include_in_schema=False)
    async def send_test(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        try:
            await app_state.call(send_test_event, tenant)
        except Conflict:
            return see_other(request, "/app/settings?done=test-none#webhooks")
        return see_other(request, "/app/settings?done=test-sent#webhooks")

    @get("/deliveries", include_in_schema=False)
    async def deliveries(self, tenant: TenantId, app_state: State) -> Response:
        """The recent deliveries table alone, for the page's Refresh button (htmx)."""
        shown = await app_state.call(webhook_log.deliveries, tenant, limit=DELIVERIES_SHOWN)
        return partial("_deliveries.html", deliveries=shown.deliveries)
