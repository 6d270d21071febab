"""The tenant's webhook delivery log: GET /v1/webhooks/deliveries (newest first, paged)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery

from rotator.api.auth import TENANT_ADMIN, State, TenantId
from rotator.domain.errors import InvalidField
from rotator.store import webhooks as store
from rotator.store.webhooks import DeliveryAttempt

MAX_LIMIT = 200


class DeliveryPage(msgspec.Struct, kw_only=True):
    deliveries: list[DeliveryAttempt]
    """One entry per attempt, newest first: an event retried twice then delivered has three."""
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; null at the end of the log."""


class WebhookController(Controller):
    path = "/v1/webhooks"
    dependencies = TENANT_ADMIN
    tags = ("webhooks",)

    @get("/deliveries", summary="Recent webhook delivery attempts and their outcome")
    async def deliveries(
        self,
        tenant: TenantId,
        app_state: State,
        limit: FromQuery[int] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> DeliveryPage:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidField("limit", f"must be between 1 and {MAX_LIMIT}")
        start: int | None = None
        if cursor is not None:
            if not cursor.isdigit() or int(cursor) < 1:
                raise InvalidField("cursor", "not a cursor from a previous page")
            start = int(cursor)
        attempts, next_seq = await store.page(app_state.redis, tenant, limit=limit, cursor=start)
        return DeliveryPage(
            deliveries=attempts, next_cursor=None if next_seq is None else str(next_seq)
        )
