"""Whole numbers typed as text (console forms, key files, CSV imports): one reading for all.

`str.isdigit()` alone is not the test: it takes '²' and other scripts' digits ('٣٠'),
which `int()` then refuses or reads as a number the API's JSON could never carry, and
`int()` of thousands of digits raises instead of answering.
"""

from __future__ import annotations

MAX_DIGITS = 30
"""Far above any limit the store accepts (its range check then names the field's range),
far below int()'s guard against huge conversions."""


def whole_number(text: str) -> int | None:
    """`text` as an integer: ASCII digits, `_` between them allowed as in the API's examples,
    an optional leading `-` (the store's range check refuses it, in the field's words).
    None when it is anything else."""
    digits = text.strip().replace("_", "")
    unsigned = digits.removeprefix("-")
    if not (0 < len(unsigned) <= MAX_DIGITS and unsigned.isascii() and unsigned.isdigit()):
        return None
    return int(digits)
