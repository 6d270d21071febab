"""Service pages: list, create, show (keys, usage chart), edit, delete.

Each handler calls the store function its API twin calls (rotator/api/management/
services.py), so a rule lives in one place; a refused value comes back as a domain
error, shown next to its field with the form as the user filled it.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from rotator.api.state import AppState
from rotator.console.auth import TENANT_PAGES, State, TenantId
from rotator.console.charts import daily_chart
from rotator.console.forms import FormErrors, optional_int, text
from rotator.console.messages import bulk_error, field_error, form_errors
from rotator.console.pages import done_notice, is_htmx, page, partial, refused_form, see_other
from rotator.domain import health, key_file
from rotator.domain.errors import Conflict, InvalidEntry, InvalidField
from rotator.domain.models import Policy
from rotator.domain.numbers import whole_number
from rotator.store import services as store
from rotator.store.usage import service_usage, services_today

POLICIES = [
    (
        Policy.USAGE.value,
        "Usage",
        "Spreads requests over the active keys, least used today "
        "first, skipping keys at their own daily limit.",
    ),
    (Policy.MANUAL.value, "Manual", "Always the current key, until you press Rotate now."),
    (
        Policy.TIME.value,
        "Time",
        "Each key is used for a fixed number of minutes from when it "
        "first enters rotation, then the next one takes over.",
    ),
    (
        Policy.ROUND_ROBIN.value,
        "Round robin",
        "One key after the other, in the order they were added, one step per request.",
    ),
    (
        Policy.WEIGHTED.value,
        "Weighted",
        "Like round robin, but each key gets its weight's share of the requests, spread "
        "evenly (a key of weight 5 gets five of every seven requests beside two of weight 1).",
    ),
    (
        Policy.LEAST_RECENTLY_USED.value,
        "Least recently used",
        "The key that has waited longest since it was last handed out.",
    ),
]
KEY_FIELDS = ("label", "max_daily_requests", "max_requests_per_minute", "weight")
"""A key's form fields that are sent back as typed after a refusal (never the secret)."""
CHART_DAYS = (7, 30)
NOTICES = {
    "created": "Service created. Add its provider keys below.",
    "saved": "Changes saved.",
    "key-added": "Key added. Its secret is stored encrypted and is never shown again.",
    "keys-added": "Keys added. Their secrets are stored encrypted and are never shown again.",
    "key-moved": "Key moved. The current key is unchanged; the order decides what comes next.",
    "key-saved": "Key saved.",
    "key-deleted": "Key deleted.",
    "rotated": "Rotated: the next active key is now current.",
    "deleted": "Service deleted.",
}


SERVICE_FIELDS = (
    "slug",
    "policy",
    "max_daily_requests",
    "max_requests_per_minute",
    "limit_warning_percent",
    "key_ttl_minutes",
    *health.FIELDS,
)


HEALTH_FORM = tuple(
    {
        "name": name,
        "label": said.label,
        "hint": f"{said.meaning[:1].upper()}{said.meaning[1:]}. "
        f"Default {getattr(health.DEFAULTS, name)}.",
        "numeric": isinstance(getattr(health.DEFAULTS, name), int),
    }
    for name, said in health.DESCRIBED.items()
)
"""The service form's key health fields, in the words the CLI's --help uses too."""


def health_settings(form: Any) -> dict[str, Any]:
    """The form's key health settings: empty = the default (None), as the API's null."""
    values: dict[str, Any] = {}
    for name in health.FIELDS:
        if name == "quota_reset_utc":
            values[name] = text(form, name).strip() or None
        else:
            values[name] = optional_int(form, name)
    return values


def service_form_values(form: Any) -> dict[str, str]:
    return {name: text(form, name).strip() for name in SERVICE_FIELDS}


def warning_percent(form: Any) -> int | None:
    """The form's limit_warning_percent: empty means no warning (as 0 does)."""
    return optional_int(form, "limit_warning_percent")


def service_form(
    *,
    creating: bool,
    title: str,
    values: dict[str, str],
    status: int = 200,
    errors: FormErrors | None = None,
) -> Response:
    """The create or edit form; after a refusal, as the user filled it (`values`, `errors`)."""
    return page(
        "service_form.html",
        status=status,
        title=title,
        section="services",
        creating=creating,
        values=values,
        errors=errors or FormErrors(),
        policies=POLICIES,
        health_fields=HEALTH_FORM,
    )


async def detail_context(state: AppState, tenant: str, slug: str, days: int) -> dict[str, Any]:
    now_ms = state.clock()
    service = await state.call(store.get_service, tenant, slug, now_ms=now_ms)
    keys = await state.call(store.list_keys, tenant, slug, now_ms=now_ms)
    days = days if days in CHART_DAYS else CHART_DAYS[0]
    days = min(days, state.settings.usage_retention_days)
    usage = await state.call(
        service_usage,
        tenant,
        slug,
        days=days,
    )
    today = usage.days[0] if usage.days else None
    return {
        "section": "services",
        "service": service,
        "keys": keys,
        "today": {k.key_id: k.deliveries for k in today.keys} if today else {},
        "service_today": today.total if today else 0,
        "reports_today": today.reports if today else {},
        "chart": daily_chart([(day.date, day.total) for day in usage.days]),
        "chart_days": CHART_DAYS,
        "policies": POLICIES,
    }


async def render_detail(
    request: Request,
    state: AppState,
    tenant: str,
    slug: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    days = whole_number(request.query_params.get("days", "")) or CHART_DAYS[0]
    context = await detail_context(state, tenant, slug, days)
    context["notice"] = done_notice(request, NOTICES)
    context.update(extra)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "keys":
        # 200 even for a refused change: htmx swaps in only 2xx answers, and the fragment
        # carries the error message next to the control it is about
        return partial("_keys.html", **context)
    return page("service.html", status=status, title=f"Service {slug}", **context)


async def keys_changed(
    request: Request, state: AppState, tenant: str, slug: str, done: str, *, notice: bool = True
) -> Response:
    """After a change to the keys: htmx swaps in the keys table (with the notice, unless the
    change shows itself in the table); a plain form post goes back to the keys."""
    if is_htmx(request):
        shown = NOTICES[done] if notice else None
        return await render_detail(request, state, tenant, slug, notice=shown)
    return see_other(request, f"/app/services/{slug}?done={done}#keys")


class ServicePages(Controller):
    path = "/app"
    dependencies = TENANT_PAGES

    @get("/services", include_in_schema=False)
    async def list_services(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        records = await app_state.call(store.list_services, tenant)
        today = await app_state.call(services_today, tenant, [s.slug for s in records])
        return page(
            "services.html",
            title="Services",
            section="services",
            rows=list(zip(records, today, strict=True)),
            notice=done_notice(request, NOTICES),
        )

    @get("/new-service", include_in_schema=False)
    async def new_service(self, tenant: TenantId) -> Response:
        defaults = {
            "policy": Policy.USAGE.value,
            "limit_warning_percent": str(store.DEFAULT_WARNING_PERCENT),
        }
        return service_form(creating=True, title="Create a service", values=defaults)

    @post("/new-service", include_in_schema=False)
    async def create_service(
        self, request: Request, tenant: TenantId, app_state: State
    ) -> Response:
        form = await request.form()
        values = service_form_values(form)
        try:
            record = await app_state.call(
                store.create_service,
                tenant,
                slug=values["slug"],
                policy=values["policy"],
                max_daily_requests=optional_int(form, "max_daily_requests"),
                max_requests_per_minute=optional_int(form, "max_requests_per_minute"),
                limit_warning_percent=warning_percent(form),
                key_ttl_minutes=optional_int(form, "key_ttl_minutes"),
                **{k: v for k, v in health_settings(form).items() if v is not None},
            )
        except (InvalidField, Conflict) as exc:
            refusal = refused_form(exc, "slug", values)
            return service_form(creating=True, title="Create a service", **refusal)
        return see_other(request, f"/app/services/{record.slug}?done=created")

    @get("/services/{slug:str}", include_in_schema=False)
    async def show(
        self, request: Request, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        return await render_detail(request, app_state, tenant, slug)

    @get("/services/{slug:str}/edit", include_in_schema=False)
    async def edit_form(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> Response:
        s = await app_state.call(store.get_service, tenant, slug)
        values = {
            name: "" if getattr(s, name) is None else str(getattr(s, name))
            for name in SERVICE_FIELDS
        }
        return service_form(creating=False, title=f"Edit {slug}", values=values)

    @post("/services/{slug:str}/edit", include_in_schema=False)
    async def edit(
        self, request: Request, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        form = await request.form()
        values = {**service_form_values(form), "slug": slug}
        try:
            policy = values["policy"]
            await app_state.call(
                store.update_service,
                tenant,
                slug,
                policy=policy,
                max_daily_requests=optional_int(form, "max_daily_requests"),
                max_requests_per_minute=optional_int(form, "max_requests_per_minute"),
                limit_warning_percent=warning_percent(form),
                key_ttl_minutes=optional_int(form, "key_ttl_minutes")
                if policy == Policy.TIME.value
                else None,
                **health_settings(form),
            )
        except (InvalidField, Conflict) as exc:
            refusal = refused_form(exc, "policy", values)
            return service_form(creating=False, title=f"Edit {slug}", **refusal)
        return see_other(request, f"/app/services/{slug}?done=saved")

    @get("/services/{slug:str}/delete", include_in_schema=False)
    async def delete_form(
        self, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        service = await app_state.call(store.get_service, tenant, slug)
        return page(
            "service_delete.html", title=f"Delete {slug}", section="services", service=service
        )

    @post("/services/{slug:str}/delete", include_in_schema=False)
    async def delete(
        self, request: Request, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        await app_state.call(store.delete_service, tenant, slug)
        return see_other(request, "/app/services?done=deleted")

    # --- keys and rotation ------------------------------------------------------------------
    @post("/services/{slug:str}/keys", include_in_schema=False)
    async def add_key(
        self, request: Request, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        form = await request.form()
        # the secret is never echoed back, not even into a form that failed
        values = {name: text(form, name) for name in KEY_FIELDS}
        try:
            weight = optional_int(form, "weight")
            await app_state.call(
                store.add_key,
                tenant,
                slug,
                label=values["label"],
                secret=text(form, "secret"),
                max_daily_requests=optional_int(form, "max_daily_requests"),
                max_requests_per_minute=optional_int(form, "max_requests_per_minute"),
                weight=1 if weight is None else weight,
            )
        except InvalidField as exc:
            errors = form_errors(exc, "secret")
            return await render_detail(
                request, app_state, tenant, slug, status=400, add_values=values, add_errors=errors
            )
        return see_other(request, f"/app/services/{slug}?done=key-added#keys")

    @post("/services/{slug:str}/keys/bulk", include_in_schema=False)
    async def add_keys(
        self, request: Request, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        form = await request.form()
        try:
            lines = key_file.parse(text(form, "keys"))
            if not lines:
                raise InvalidField("keys", "paste at least one key")
            try:
                await app_state.call(store.add_keys, tenant, slug, [line.key for line in lines])
            except InvalidEntry as exc:
                raise key_file.line_error(lines, exc) from None
        except InvalidField as exc:
            # the pasted keys are never sent back: the message names the line to fix
            return await render_detail(
                request,
                app_state,
                tenant,
                slug,
                status=400,
                bulk_errors=FormErrors("keys", bulk_error(exc)),
            )
        return see_other(request, f"/app/services/{slug}?done=keys-added#keys")

    @post("/services/{slug:str}/keys/{key_id:int}/move", include_in_schema=False)
    async def move_key(
        self,
        request: Request,
        tenant: TenantId,
        slug: FromPath[str],
        key_id: FromPath[int],
        app_state: State,
    ) -> Response:
        form = await request.form()
        await app_state.call(store.move_key, tenant, slug, key_id, to=text(form, "to"))
        return await keys_changed(request, app_state, tenant, slug, "key-moved")

    @post("/services/{slug:str}/keys/{key_id:int}", include_in_schema=False)
    async def change_key(
        self,
        request: Request,
        tenant: TenantId,
        slug: FromPath[str],
        key_id: FromPath[int],
        app_state: State,
    ) -> Response:
        form = await request.form()
        changes: dict[str, Any] = {}
        try:
            if "active" in form:
                changes["active"] = text(form, "active") == "1"
            if "label" in form:
                changes["label"] = text(form, "label")
            for name in ("max_daily_requests", "max_requests_per_minute"):
                if name in form:
                    changes[name] = optional_int(form, name)
            # an emptied weight field leaves the weight as it is (a weight is never "none")
            if (weight := optional_int(form, "weight")) is not None:
                changes["weight"] = weight
            await app_state.call(store.update_key, tenant, slug, key_id, **changes)
        except InvalidField as exc:
            values = {name: text(form, name) for name in KEY_FIELDS}
            return await render_detail(
                request,
                app_state,
                tenant,
                slug,
                status=400,
                key_errors={key_id: form_errors(exc, "label")},
                key_values={key_id: values},
            )
        return await keys_changed(request, app_state, tenant, slug, "key-saved", notice=False)

    @post("/services/{slug:str}/keys/{key_id:int}/delete", include_in_schema=False)
    async def delete_key(
        self,
        request: Request,
        tenant: TenantId,
        slug: FromPath[str],
        key_id: FromPath[int],
        app_state: State,
    ) -> Response:
        await app_state.call(store.remove_key, tenant, slug, key_id)
        return see_other(request, f"/app/services/{slug}?done=key-deleted#keys")

    @post("/services/{slug:str}/rotate", include_in_schema=False)
    async def rotate(
        self, request: Request, tenant: TenantId, slug: FromPath[str], app_state: State
    ) -> Response:
        try:
            await app_state.call(store.rotate, tenant, slug)
        except Conflict as exc:
            _, message = field_error(exc, "rotate")
            return await render_detail(
                request, app_state, tenant, slug, status=409, rotate_error=message
            )
        return await keys_changed(request, app_state, tenant, slug, "rotated")
