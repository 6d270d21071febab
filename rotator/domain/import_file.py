"""An export of services and keys, as `rotator import` and the console's import page read it:
CSV with a header row, or a JSON array of objects, with the columns

    slug, policy, limit, label, secret      (and key_ttl_minutes, for a time policy)

`slug` and `secret` are required in every row; `policy` (and `key_ttl_minutes` for `time`)
is required where the service does not exist yet; `limit` is the service's daily request
limit (empty = none); `label` names the key (empty = `Key <id>`). docs/migration.md shows
both forms.

Only the shape of the file is checked here (columns, types, whole numbers); what a slug,
a policy, a label or a secret may be is the store's rule (rotator/store/imports.py). Row
numbers are what a person finds the row by: for CSV the line it starts on (the header is
line 1, as a spreadsheet numbers it), for JSON its position in the array, from 1. No
error ever quotes a value: a row may hold a secret.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import msgspec

from rotator.domain.errors import InvalidRows, RowProblem
from rotator.domain.numbers import whole_number

COLUMNS = ("slug", "policy", "limit", "label", "secret", "key_ttl_minutes")
REQUIRED_COLUMNS = ("slug", "secret")


class ImportRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row as read, before the store's checks; None = the cell was empty."""

    row: int
    slug: str
    policy: str | None = None
    limit: int | None = None
    label: str | None = None
    secret: str
    key_ttl_minutes: int | None = None

    def __repr__(self) -> str:
        """Without the secret: a row may end up in a traceback or a test's report."""
        return f"ImportRow(row={self.row}, slug={self.slug!r}, secret=<{len(self.secret)} chars>)"


def parse(text: str) -> list[ImportRow]:
    """The rows of an export: JSON when its first character (past blanks) is `[`, else CSV.
    Raises InvalidRows naming every row it cannot read."""
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("["):
        return _parse_json(text)
    return _parse_csv(text)


def _parse_csv(text: str) -> list[ImportRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidRows([RowProblem(row=1, field="header", problem=str(exc))]) from None
    if header is None:
        raise InvalidRows([RowProblem(row=1, field="header", problem="the file is empty")])
    names = [name.strip().lower() for name in header]
    _check_columns(names)
    rows: list[ImportRow] = []
    problems: list[RowProblem] = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(row=start, field="row", problem=str(exc)))
            raise InvalidRows(problems) from None
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) > len(names):
            problems.append(
                RowProblem(row=start, field="row",
                           problem=f"{len(cells)} cells, the header names {len(names)}")
            )  # fmt: skip
            continue
        values = {name: cell.strip() for name, cell in zip(names, cells, strict=False)}
        _row(start, {k: v or None for k, v in values.items()}, rows, problems, numbers_as_text=True)
    if problems:
        raise InvalidRows(problems)
    return rows


def _parse_json(text: str) -> list[ImportRow]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRows(
            [RowProblem(row=0, field="file", problem=f"not JSON (line {exc.lineno}: {exc.msg})")]
        ) from None
    except RecursionError:  # brackets nested thousands deep: no export looks like that
        raise InvalidRows([RowProblem(row=0, field="file", problem="nested too deeply")]) from None
    rows: list[ImportRow] = []
    problems: list[RowProblem] = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.append(RowProblem(row=number, field="row", problem="must be an object"))
            continue
        unknown = sorted(set(item) - set(COLUMNS))
        if unknown:
            problems.append(
                RowProblem(row=number, field=_name_of(unknown[0], "field"),
                           problem=f"unknown field (known: {', '.join(COLUMNS)})")
            )  # fmt: skip
            continue
        _row(number, item, rows, problems, numbers_as_text=False)
    if problems:
        raise InvalidRows(problems)
    return rows


_NAMEABLE = re.compile(r"[a-z_ ]{1,32}")
"""A name an error may quote (a misspelt column): short, lowercase letters, `_` and spaces
only, which no provider key is."""


def _name_of(name: str, what: str) -> str:
    return name if _NAMEABLE.fullmatch(name) else f"the {what} named otherwise"


def _check_columns(names: list[str]) -> None:
    """The header's problems. A file without a header has a key where the header should be:
    an unknown column is quoted only when it looks like a misspelt name (_NAMEABLE), else
    named by its position."""
    known = ", ".join(COLUMNS)
    if not any(n in COLUMNS for n in names):
        problem = f"must be the header naming the columns ({known}): this line names none"
        raise InvalidRows([RowProblem(row=1, field="header", problem=problem)])
    unknown = [(i, n) for i, n in enumerate(names, start=1) if n not in COLUMNS]
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    duplicated = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    problems = [
        *(RowProblem(row=1, field=n if _NAMEABLE.fullmatch(n) else f"column {i}",
                     problem=f"unknown column (known: {known})") for i, n in unknown),
        *(RowProblem(row=1, field=n, problem="required column missing") for n in missing),
        *(RowProblem(row=1, field=n, problem="column named twice") for n in duplicated),
    ]  # fmt: skip
    if problems:
        raise InvalidRows(problems)


def _row(
    number: int,
    values: dict[str, Any],
    rows: list[ImportRow],
    problems: list[RowProblem],
    *,
    numbers_as_text: bool,
) -> None:
    """Append the row read from `values` (None = empty), or its problems."""
    found: list[RowProblem] = []
    fields: dict[str, Any] = {}
    for name in ("slug", "secret"):
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            found.append(RowProblem(row=number, field=name, problem="required"))
        elif not isinstance(value, str):
            found.append(RowProblem(row=number, field=name, problem="must be a string"))
        else:
            fields[name] = value.strip()
    for name in ("policy", "label"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            found.append(RowProblem(row=number, field=name, problem="must be a string or null"))
        elif value is not None and value.strip():
            fields[name] = value.strip()
    for name in ("limit", "key_ttl_minutes"):
        value = values.get(name)
        if value is None:
            continue
        if numbers_as_text:
            read = whole_number(value)
            if read is None:
                found.append(
                    RowProblem(row=number, field=name, problem="must be a whole number, or empty")
                )
                continue
            fields[name] = read
        elif isinstance(value, bool) or not isinstance(value, int):
            found.append(
                RowProblem(row=number, field=name, problem="must be a whole number, or null")
            )
        else:
            fields[name] = value
    if found:
        problems.extend(found)
    else:
        rows.append(ImportRow(row=number, **fields))
