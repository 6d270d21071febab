"""Import services and keys, all or nothing: `rotator import` and the console's import page
over HTTP (the same store function, rotator/store/imports.py)."""

from __future__ import annotations

from litestar import post
from litestar.params import JSONBody

from rotator.api.auth import State, TenantAdminBase, TenantId
from rotator.api.openapi import BODY, CONFLICT, NOT_FOUND, errors
from rotator.api.schemas import ImportCreate
from rotator.domain.import_file import ImportRow
from rotator.domain.records import Imported
from rotator.store import imports as store


class ImportController(TenantAdminBase):
    path = "/v1/import"
    tags = ("services",)

    @post(
        "/",
        summary="Import services and keys (an export of the hosted service), all or nothing",
        description="Each row adds one key to the service `slug`, creating the service (with "
        "`policy`, `limit` as its max_daily_requests and `key_ttl_minutes`) if it does not "
        "exist. An import never changes an existing service: a row that disagrees with it is "
        "refused. Every row is checked first; refused rows are listed in `rows` "
        '(`{"row", "field", "problem"}`, rows counted from 1) and nothing is imported then. '
        f"At most {store.MAX_IMPORT_ROWS} rows. If the store fails midway, what was written "
        "is taken back (503); if even that fails, 500 with `error` naming what remains. "
        "docs/migration.md.",
        responses=errors(*BODY, NOT_FOUND, CONFLICT),
    )
    async def run(
        self, tenant: TenantId, data: JSONBody[ImportCreate], app_state: State
    ) -> Imported:
        rows = [
            ImportRow(
                row=number, slug=entry.slug, policy=entry.policy, limit=entry.limit,
                label=entry.label, secret=entry.secret, key_ttl_minutes=entry.key_ttl_minutes,
            )
            for number, entry in enumerate(data.rows, start=1)
        ]  # fmt: skip
        return await app_state.call(store.import_keys, tenant, rows)
