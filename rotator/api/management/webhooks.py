"""The tenant's webhook delivery log: GET /v1/webhooks/deliveries (newest first, paged)."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.params import QueryParameter

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import CONFLICT, errors
from rotator.domain.records import DeliveryPage, TestEventSent
from rotator.store import webhooks as store
from rotator.store.test_event import send_test_event
from rotator.store.webhooks import MAX_PAGE

MAX_CURSOR = 2**53 - 1
"""Seqs are counted by a Lua script, whose numbers are exact integers up to 2^53."""


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
            int, QueryParameter(ge=1, le=MAX_PAGE, description="entries per page")
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
        return await app_state.call(store.deliveries, tenant, limit=limit, cursor=cursor)

    @post(
        "/test",
        status_code=202,
        summary="Send a webhook.test event to the tenant's webhook",
        description="Recorded like any event and delivered by the workers (signed), whatever "
        "the subscribed types; 409 when no webhook_url is set.",
        responses=errors(CONFLICT),
    )
    async def test(self, tenant: TenantId, app_state: State) -> TestEventSent:
        return await app_state.call(send_test_event, tenant)
