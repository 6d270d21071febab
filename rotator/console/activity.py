"""Activity pages: the audit log in the console. A tenant sees its own records
(/app/activity); the operator every tenant's, one tenant's on request
(/app/operator/activity). Both read through the store function GET /v1/audit calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Template

from rotator.console.auth import (
    OPERATOR_PAGES,
    OPERATOR_PATH,
    TENANT_PAGES,
    State,
    TenantId,
    operator_signed_in,
)
from rotator.console.pages import page
from rotator.domain.errors import InvalidField
from rotator.domain.records import AuditPage
from rotator.store import audit

SHOWN = 50


async def _read(state: Any, **filters: Any) -> tuple[Any, str | None]:
    """A page of records, or an empty page and the refusal (a hand-edited cursor...)."""
    try:
        return await state.call(audit.read_audit, limit=SHOWN, **filters), None
    except InvalidField as exc:
        return AuditPage(records=[], next_cursor=None), exc.message


def _older(path: str, records: AuditPage, **filters: str | None) -> str | None:
    """The address of the next (older) page with the same filters; None at the end."""
    if records.next_cursor is None:
        return None
    query = {k: v for k, v in filters.items() if v}
    return f"{path}?{urlencode({**query, 'cursor': records.next_cursor})}"


def _query(value: str | None) -> str | None:
    return value.strip() or None if value else None


class ActivityPage(Controller):
    path = "/app/activity"
    dependencies = TENANT_PAGES

    @get("/", include_in_schema=False)
    async def show(
        self,
        tenant: TenantId,
        app_state: State,
        action: str | None = Parameter(default=None, max_length=64),
        cursor: str | None = Parameter(default=None, max_length=41),
    ) -> Template:
        records, problem = await _read(
            app_state, viewer=tenant, action=_query(action), cursor=_query(cursor)
        )
        return page(
            "activity.html",
            title="Activity",
            section="activity",
            page=records,
            action=action or "",
            tenant_filter="",
            show_tenant=False,
            problem=problem,
            older=_older(self.path, records, action=_query(action)),
        )


class OperatorActivityPage(Controller):
    path = OPERATOR_PATH + "/activity"
    guards = (operator_signed_in,)
    dependencies = OPERATOR_PAGES

    @get("/", include_in_schema=False)
    async def show(
        self,
        app_state: State,
        tenant: str | None = Parameter(default=None, max_length=64),
        action: str | None = Parameter(default=None, max_length=64),
        cursor: str | None = Parameter(default=None, max_length=41),
    ) -> Template:
        records, problem = await _read(
            app_state,
            viewer=None,
            tenant=_query(tenant),
            action=_query(action),
            cursor=_query(cursor),
        )
        return page(
            "operator_activity.html",
            title="Activity",
            section="activity",
            page=records,
            tenant_filter=tenant or "",
            action=action or "",
            show_tenant=True,
            problem=problem,
            older=_older(self.path, records, tenant=_query(tenant), action=_query(action)),
        )
