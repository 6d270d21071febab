"""GET /v1/audit: who changed what, newest first (a tenant admin: its own tenant's records;
the operator: every tenant's, filterable). Written by rotator/store/audit.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from rotator.api.auth import OperatorOrTenantAdminBase, State, Viewer
from rotator.api.openapi import errors
from rotator.domain.records import AuditPage
from rotator.store import audit as store


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class AuditController(OperatorOrTenantAdminBase):
    path = "/v1/audit"
    tags = ("audit",)

    @get(
        "",
        summary="The audit log: management writes and refused attempts, newest first",
        description="With a tenant's admin token: that tenant's records. With the operator "
        "token: every tenant's (and the operator's own writes), `tenant` to narrow. Records "
        "never hold a provider key, token, webhook secret or password.",
        responses=errors(),
    )
    async def audit(
        self,
        viewer: Viewer,
        app_state: State,
        tenant: Annotated[
            str | None,
            QueryParameter(max_length=64, description="only this tenant's records"),
        ] = None,
        action: Annotated[
            str | None,
            QueryParameter(max_length=64, description="only this action (`update_key`, ...)"),
        ] = None,
        since: Annotated[
            datetime | None, QueryParameter(description="only records at or after (RFC 3339)")
        ] = None,
        until: Annotated[
            datetime | None, QueryParameter(description="only records at or before (RFC 3339)")
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=store.MAX_PAGE, description="records per page")
        ] = 50,
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=41,
                description="`next_cursor` of the previous page; absent for the newest records",
            ),
        ] = None,
    ) -> AuditPage:
        return await app_state.call(
            store.read_audit,
            viewer=viewer,
            tenant=tenant,
            action=action,
            since_ms=_ms(since),
            until_ms=_ms(until),
            limit=limit,
            cursor=cursor,
        )
