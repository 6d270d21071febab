"""GET /v1/services/{slug}/usage?days=N: deliveries per key per UTC day."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, Parameter

from rotator.api.auth import TENANT_ADMIN, State, TenantId
from rotator.api.schemas import DayUsage, KeyUsage, ServiceUsage
from rotator.domain.clock import utc_day
from rotator.domain.errors import InvalidField
from rotator.store.usage import service_usage


class UsageController(Controller):
    path = "/v1/services/{slug:str}/usage"
    dependencies = TENANT_ADMIN
    tags = ("services",)

    @get("/", summary="Deliveries per key per UTC day, newest day first")
    async def usage(
        self,
        tenant: TenantId,
        slug: FromPath[str],
        app_state: State,
        days: Annotated[int, Parameter(description="how many UTC days, 1 to the retention")] = 7,
    ) -> ServiceUsage:
        retention = app_state.settings.usage_retention_days
        if not 1 <= days <= retention:
            raise InvalidField("days", f"must be between 1 and {retention}")
        labels, history = await service_usage(
            app_state.redis, tenant, slug, today=utc_day(app_state.clock()), days=days
        )
        return ServiceUsage(
            service=slug,
            days=[
                DayUsage(
                    date=date,
                    total=total,
                    keys=[
                        KeyUsage(key_id=key_id, label=label, deliveries=per_key[key_id])
                        for key_id, label in labels
                    ],
                )
                for date, total, per_key in history
            ],
        )
