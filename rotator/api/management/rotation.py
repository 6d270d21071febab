"""POST /v1/services/{slug}/rotate: advance a manual service's primary key."""

from __future__ import annotations

from litestar import post
from litestar.params import FromPath

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import CONFLICT, NOT_FOUND, errors
from rotator.domain.records import Rotated
from rotator.store import services as store


class RotationController(TenantAdminBase):
    path = "/v1/services/{slug:str}/rotate"
    tags = ("services",)

    @post(
        "/",
        status_code=200,
        summary="Rotate a manual service to its next active key",
        description="Records key.rotated when the primary changes. 409 for other policies, "
        'and when the service has no active key (`{"error": "no active keys"}`).',
        responses=errors(NOT_FOUND, CONFLICT),
    )
    async def rotate(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> Rotated:
        return await app_state.call(store.rotate, tenant, slug)
