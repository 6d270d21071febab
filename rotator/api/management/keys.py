"""A service's provider keys. Secrets go in, only masked forms come out."""

from __future__ import annotations

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, CONFLICT, NOT_FOUND, errors
from rotator.api.schemas import KeyCreate, KeyPatch
from rotator.domain.records import Key
from rotator.store import services as store


class KeyController(TenantAdminBase):
    path = "/v1/services/{slug:str}/keys"
    tags = ("keys",)

    @post(
        "/",
        summary="Add a provider key (stored encrypted; appended to the rotation)",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
    )
    async def add(
        self, tenant: TenantId, slug: FromPath[str], data: JSONBody[KeyCreate], app_state: State
    ) -> Key:
        return await store.add_key(
            app_state.redis,
            app_state.durability,
            app_state.keyring,
            tenant,
            slug,
            **msgspec.structs.asdict(data),
            now_ms=app_state.clock(),
        )

    @get("/", summary="List keys in rotation order (masked)", responses=errors(NOT_FOUND))
    async def list(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> list[Key]:
        return await store.list_keys(app_state.redis, tenant, slug)

    @patch(
        "/{key_id:int}",
        summary="Relabel, enable/disable or re-limit a key",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
    )
    async def change(
        self,
        tenant: TenantId,
        slug: FromPath[str],
        key_id: FromPath[int],
        data: JSONBody[KeyPatch],
        app_state: State,
    ) -> Key:
        return await store.update_key(
            app_state.redis,
            app_state.durability,
            tenant,
            slug,
            key_id,
            **msgspec.structs.asdict(data),
        )

    @delete(
        "/{key_id:int}",
        summary="Delete a key (its ciphertext too)",
        responses=errors(NOT_FOUND, CONFLICT),
    )
    async def remove(
        self, tenant: TenantId, slug: FromPath[str], key_id: FromPath[int], app_state: State
    ) -> None:
        await store.remove_key(app_state.redis, app_state.durability, tenant, slug, key_id)
