"""GET /v1/services/{slug}/usage?days=N: deliveries per key per UTC day."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import FromPath, QueryParameter

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import NOT_FOUND, errors
from rotator.domain.records import ServiceUsage
from rotator.store.usage import service_usage


class UsageController(TenantAdminBase):
    path = "/v1/services/{slug:str}/usage"
    tags = ("services",)

    @get(
        "/",
        summary="Deliveries per key per UTC day, newest day first",
        responses=errors(NOT_FOUND),
    )
    async def usage(
        self,
        tenant: TenantId,
        slug: FromPath[str],
        app_state: State,
        days: Annotated[
            int,
            # no declared bounds: the store's one range check (1 to the retention, a
            # setting) answers every value outside it in the same words as the CLI's
            QueryParameter(
                description="how many UTC days, newest first: 1 to the usage retention "
                "(ROTATOR_USAGE_RETENTION_DAYS, default 35)",
            ),
        ] = 7,
    ) -> ServiceUsage:
        return await app_state.call(
            service_usage,
            tenant,
            slug,
            days=days,
        )
