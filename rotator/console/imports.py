"""The import page: an export of services and keys (CSV or JSON, a file or pasted) into the
signed-in tenant, all or nothing, through the store function `rotator import` calls
(rotator/store/imports.py), so the rules and the row numbers are the same at both doors.
The file's content is never sent back: a refusal lists the rows to fix, by number."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile

from rotator.console.auth import TENANT_PAGES, State, TenantId
from rotator.console.forms import text
from rotator.console.pages import page
from rotator.domain import import_file
from rotator.domain.errors import (
    Conflict,
    ImportIncomplete,
    InvalidField,
    InvalidRows,
    NotFound,
    RotatorError,
    RowProblem,
)
from rotator.store import imports as store

MAX_FILE_BYTES = 512 * 1024
"""A larger export goes through `rotator import` (the request body cap is 1 MiB)."""


async def _content(form: Any) -> str:
    """The uploaded file, else the pasted text."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            limit_kib = MAX_FILE_BYTES // 1024
            raise InvalidField("file", f"larger than {limit_kib} KiB: use rotator import")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidField("file", "not UTF-8 text") from None
    return text(form, "content")


def _problems(exc: RotatorError) -> list[RowProblem]:
    if isinstance(exc, InvalidRows):
        return exc.problems
    field = exc.field if isinstance(exc, InvalidField) else "file"
    problem = exc.problem if isinstance(exc, InvalidField) else exc.message
    return [RowProblem(row=0, field=field, problem=problem)]


class ImportPage(Controller):
    path = "/app"
    dependencies = TENANT_PAGES

    @get("/import", include_in_schema=False)
    async def form(self, tenant: TenantId) -> Response:
        return page("import.html", title="Import services and keys", section="services")

    @post("/import", include_in_schema=False)
    async def run(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        form = await request.form()
        try:
            content = await _content(form)
            if not content.strip():
                raise InvalidField("file", "choose a file, or paste its content")
            rows = import_file.parse(content)
            del content
            result = await app_state.call(store.import_keys, tenant, rows)  # fmt: skip
        except (InvalidField, Conflict, NotFound, ImportIncomplete) as exc:
            return page(
                "import.html", status=400, title="Import services and keys",
                section="services", problems=_problems(exc),
            )  # fmt: skip
        return page("import.html", title="Imported", section="services", result=result)
