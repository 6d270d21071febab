"""What a command prints: the API's JSON (`--json`), or a table / `field: value` lines.

Records are the API's (rotator/domain/records.py), so `--json` is byte for byte what
the API would answer; a person gets the same fields, laid out to read.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


def emit(result: Any, *, as_json: bool, columns: Sequence[str] = ()) -> None:
    if result is None:
        return
    if as_json:
        sys.stdout.buffer.write(_encode(result) + b"\n")
        sys.stdout.flush()
        return
    if isinstance(result, list):
        print(table(result, columns))
    else:
        print(lines(result))


def cell(value: Any) -> str:
    """One value as a person reads it: `-` for none, lists joined, yes/no for booleans."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else "-"
    if isinstance(value, msgspec.Struct):
        return lines(value).replace("\n", "; ")
    return str(value)


def _fields(record: Any) -> dict[str, Any]:
    if isinstance(record, msgspec.Struct):
        return {name: getattr(record, name) for name in record.__struct_fields__}
    return dict(record)


def lines(record: Any) -> str:
    """`field: value`, one a line (what `rotator tenant create acme` prints)."""
    fields = {k: v for k, v in _fields(record).items() if not _omitted(record, k, v)}
    return "\n".join(f"{name}: {cell(value)}" for name, value in fields.items())


def _omitted(record: Any, name: str, value: Any) -> bool:
    # a record with omit_defaults (Tenant's once-shown webhook_secret) leaves it out of
    # the API's JSON when unset: so does the table
    config = getattr(type(record), "__struct_config__", None)
    return bool(config and config.omit_defaults and value is None)


def table(records: Sequence[Any], columns: Sequence[str] = ()) -> str:
    """A left-aligned table with a header; `(none)` for an empty list."""
    if not records:
        return "(none)"
    names = list(columns) or list(_fields(records[0]))
    rows = [[cell(_fields(r).get(n)) for n in names] for r in records]
    widths = [max(len(n), *(len(row[i]) for row in rows)) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(names), *(line(row) for row in rows)])
