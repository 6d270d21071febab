"""The tenant's webhook delivery log: GET /v1/webhooks/deliveries (newest first, paged)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.params import QueryParameter

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import errors
from rotator.store import webhooks as store
from rotator.store.webhooks import DeliveryAttempt

MAX_LIMIT = 200
MAX_CURSOR = 2**53 - 1
"""Seqs are counted by a Lua script, whose numbers are exact integers up to 2^53."""


class DeliveryPage(msgspec.Struct, kw_only=True):
    deliveries: list[DeliveryAttempt]
    """One entry per attempt, newest first: an event retried twice then delivered has three."""
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; null at the end of the log."""


class WebhookController(TenantAdminBase):
    path = "/v1/webhooks"
    tags = ("webhooks",)

    @get(
        "/deliveries",
        summary="Recent webhook delivery attempts and their outcome",
        responses=errors(),
    )
    async def deliveries(
        self,
        tenant: TenantId,
        app_state: State,
        limit: Annotated[
            int, QueryParameter(ge=1, le=MAX_LIMIT, description="entries per page")
        ] = 50,
        cursor: Annotated[
            int | None,
            QueryParameter(
                ge=1,
                le=MAX_CURSOR,
                description="`next_cursor` of the previous page; absent for the newest entries",
            ),
        ] = None,
    ) -> DeliveryPage:
        attempts, next_seq = await store.page(app_state.redis, tenant, limit=limit, cursor=cursor)
        return DeliveryPage(
            deliveries=attempts, next_cursor=None if next_seq is None else str(next_seq)
        )
