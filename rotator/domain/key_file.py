"""The text form of many provider keys, one a line: what `rotator key add-file` reads and the
console's bulk-add box takes.

    # comments and blank lines are ignored
    sk-proj-aaaa…                      a secret alone: labelled `Key <id>`
    sk-proj-bbbb…<TAB>Backup           a secret and its label
    sk-proj-cccc…<TAB>Batch<TAB>500    … and its own daily limit
    sk-proj-dddd…,Spare,1000           commas instead, on a line without a TAB

Fields are trimmed; an empty label or limit means none. A label holding a comma needs the TAB
form. Only the shape of a line is checked here; what a secret, label or limit may be is the
store's rule (rotator/store/services.py), and its refusal of an entry is turned back into the
line it came from (`line_error`), so both doors name the line to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from rotator.domain.errors import InvalidEntry, InvalidField
from rotator.domain.models import NewKey
from rotator.domain.numbers import whole_number


class Line(msgspec.Struct, frozen=True):
    number: int
    """1-based, counting every line of the text (comments and blanks too)."""
    key: NewKey


class InvalidLine(InvalidField):
    """A line that cannot be read, or an entry the store refused, by its line number."""

    def __init__(self, number: int, field: str, problem: str) -> None:
        self.number = number
        super().__init__(field, problem)
        self.message = f"line {number}: {field}: {problem}"
        self.args = (self.message,)


def parse(text: str) -> list[Line]:
    """The keys of `text`, in order, each with its line number. Never puts a secret in an
    error: the line number and the field say where to look."""
    lines = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # split before trimming: a line that starts with its separator has an empty secret,
        # which the store refuses, rather than its label taken for the secret
        fields = [f.strip() for f in (raw.split("\t") if "\t" in raw else raw.split(","))]
        if len(fields) > 3:
            raise InvalidLine(
                number, "line", f"at most 3 fields (secret, label, daily limit), not {len(fields)}"
            )
        secret, label, limit = [*fields, "", ""][:3]
        lines.append(
            Line(number, NewKey(secret=secret, label=label or None,
                                max_daily_requests=_limit(number, limit)))
        )  # fmt: skip
    return lines


def _limit(number: int, text: str) -> int | None:
    if not text.strip():
        return None
    value = whole_number(text)
    if value is None:
        raise InvalidLine(number, "max_daily_requests", "must be a whole number, or empty")
    return value


def line_error(lines: Sequence[Line], exc: InvalidEntry) -> InvalidLine:
    """The store's refusal of entry `exc.index` as the refusal of the line it was read from."""
    return InvalidLine(lines[exc.index].number, exc.field, exc.problem)
