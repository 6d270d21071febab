"""A service's provider keys. Secrets go in, only masked forms come out."""

from __future__ import annotations

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, CONFLICT, NOT_FOUND, errors
from rotator.api.schemas import KeyCreate, KeyMove, KeyPatch, KeysBulkCreate
from rotator.domain.models import NewKey
from rotator.domain.records import Key, KeysAdded
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
        return await app_state.call(store.add_key, tenant, slug, **msgspec.structs.asdict(data))

    @post(
        "/bulk",
        summary="Add many provider keys at once, all or none",
        description="Appends the keys to the rotation in the order given, in one atomic step: "
        "every entry is checked first, and a refusal names the first bad one "
        '(`{"error", "index", "field"}`, index counting from 0); nothing is added then. '
        f"At most {store.MAX_BULK_KEYS} keys; a key without a label is named `Key <id>`.",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
    )
    async def add_many(
        self,
        tenant: TenantId,
        slug: FromPath[str],
        data: JSONBody[KeysBulkCreate],
        app_state: State,
    ) -> KeysAdded:
        return await app_state.call(
            store.add_keys,
            tenant,
            slug,
            [NewKey(**msgspec.structs.asdict(entry)) for entry in data.keys],
        )

    @get("/", summary="List keys in rotation order (masked)", responses=errors(NOT_FOUND))
    async def list(self, tenant: TenantId, slug: FromPath[str], app_state: State) -> list[Key]:
        return await app_state.call(store.list_keys, tenant, slug)

    @patch(
        "/{key_id:int}",
        summary="Relabel, enable/disable or re-limit a key",
        description="Disabling the current key of a manual or time service makes the next "
        "usable key current at once (key.rotated, reason `disabled`). Enabling a key that was "
        "disabled or has expired restarts its lifetime: under the time policy it enters "
        "rotation again at its next delivery.",
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
        return await app_state.call(
            store.update_key, tenant, slug, key_id, **msgspec.structs.asdict(data)
        )

    @post(
        "/{key_id:int}/move",
        status_code=200,
        summary="Move a key to the front or the end of the rotation",
        description='`{"to": "front"}` or `{"to": "end"}`; answers the keys in their new '
        "order. Which key is current does not change (the manual primary stays, and so does "
        "the time policy's key in use): moving changes what comes after it. Under the usage "
        "policy the order breaks ties between equally used keys.",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
    )
    async def move(
        self,
        tenant: TenantId,
        slug: FromPath[str],
        key_id: FromPath[int],
        data: JSONBody[KeyMove],
        app_state: State,
    ) -> list[Key]:
        return await app_state.call(store.move_key, tenant, slug, key_id, to=data.to)

    @delete(
        "/{key_id:int}",
        summary="Delete a key (its ciphertext too)",
        description="Deleting the current key of a manual or time service makes the next "
        "usable key current at once (key.rotated, reason `deleted`).",
        responses=errors(NOT_FOUND, CONFLICT),
    )
    async def remove(
        self, tenant: TenantId, slug: FromPath[str], key_id: FromPath[int], app_state: State
    ) -> None:
        await app_state.call(store.remove_key, tenant, slug, key_id)
