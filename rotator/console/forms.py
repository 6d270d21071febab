"""Reading HTML form fields into the types the store functions take.

Only the conversion from text lives here (a form sends strings); every rule about the
values themselves (ranges, formats) is the store's, so the console cannot drift from
the API.
"""

from __future__ import annotations

import re
from typing import Any

from rotator.domain.errors import InvalidField
from rotator.domain.numbers import whole_number

_SEPARATORS = re.compile(r"[\s,]+")


def chosen_token(form: Any, name: str) -> str | None:
    """An optional token to import (a password field): None when left empty, so the store
    issues one of ours. Surrounding whitespace from a paste is dropped."""
    value = text(form, name).strip()
    return value or None


def text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def optional_int(form: Any, name: str) -> int | None:
    """'' = None (no limit); anything else must be a whole number."""
    raw = text(form, name)
    if not raw.strip():
        return None
    value = whole_number(raw)
    if value is None:
        raise InvalidField(name, "enter a whole number, or leave it empty")
    return value


def address_list(form: Any, name: str) -> list[str]:
    """An allowlist typed one entry per line (commas and spaces separate too)."""
    return [part for part in _SEPARATORS.split(text(form, name)) if part]


def checked(form: Any, name: str) -> list[str]:
    """The values of a group of checkboxes sharing one name."""
    return [v for v in form.getall(name, []) if isinstance(v, str)]


class FormErrors(dict[str, str]):
    """field -> message, shown next to the field; `values` keeps what the user typed."""

    def __init__(self, field: str | None = None, message: str | None = None) -> None:
        super().__init__()
        if field is not None and message is not None:
            self[field] = message
