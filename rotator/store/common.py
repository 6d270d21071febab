"""What the management store modules share: input checks, field decoding.

The checks live here (not in the API) because the CLI writes through the same
functions: whatever reaches Redis has passed them, whichever door it came in by.
Each check raises InvalidField naming the field, so the API answers 400.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping

from rotator.domain import iprange
from rotator.domain.errors import InvalidField

MAX_NAME_CHARS = 100
MAX_URL_CHARS = 2048
"""A webhook URL's longest: what browsers and most servers take; it is stored, shown and
sent on every delivery."""
MAX_DAILY_REQUESTS = 10**12


# --- input checks -------------------------------------------------------------------------
def check_text(field: str, value: str, *, max_chars: int) -> str:
    """One line of text: trimmed, 1..max_chars characters, no control characters (a line
    break would split a log line, a CLI table row or a header built from it)."""
    value = value.strip()
    if not value:
        raise InvalidField(field, "must not be empty")
    if len(value) > max_chars:
        raise InvalidField(field, f"at most {max_chars} characters")
    if any(_breaks_a_line(ch) for ch in value):
        raise InvalidField(field, "must not contain control characters")
    return value


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embeddings, overrides and isolates: they reorder the text after them on screen, so a
name could show in a listing as something it is not."""


def _breaks_a_line(ch: str) -> bool:
    """A control character (C0, DEL, C1 such as U+0085 NEL), a line or paragraph separator
    (U+2028, U+2029: line breaks to JSON readers and editors) or a bidi control."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS


def check_name(field: str, value: str) -> str:
    """A human label: trimmed, 1..100 characters, no control characters."""
    return check_text(field, value, max_chars=MAX_NAME_CHARS)


def _check_count_limit(field: str, value: int | None, *, most: int) -> int | None:
    """A request limit: an integer from 1 to `most`, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(field, "must be a positive integer or null")
    if not 1 <= value <= most:
        raise InvalidField(field, f"must be between 1 and {most}")
    return value


def check_limit(field: str, value: int | None) -> int | None:
    """A daily request limit: a positive integer, or None for no limit."""
    return _check_count_limit(field, value, most=MAX_DAILY_REQUESTS)


MAX_REQUESTS_PER_MINUTE = 1_000_000
MAX_WEIGHT = 1000


def check_per_minute(field: str, value: int | None) -> int | None:
    """A per-minute request limit: a positive integer, or None for no limit (the delivery
    script keeps that many delivery times per window, hence the cap)."""
    return _check_count_limit(field, value, most=MAX_REQUESTS_PER_MINUTE)


def check_weight(value: int) -> int:
    """A key's weight under the weighted policy: 1..1000 (a share, so 0 would mean "never":
    disable the key instead)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WEIGHT:
        raise InvalidField("weight", f"must be an integer between 1 and {MAX_WEIGHT}")
    return value


def check_allowlist(field: str, cidrs: list[str]) -> tuple[str, str]:
    """(packed ranges for the delivery script, JSON of the normalised CIDRs for humans)."""
    nets = iprange.parse_allowlist(field, cidrs)
    return iprange.pack(nets), json.dumps([iprange.display(net) for net in nets])


# --- decoding stored fields ---------------------------------------------------------------
def text(record: Mapping[bytes, bytes], field: str, default: str = "") -> str:
    value = record.get(field.encode())
    return default if value is None else value.decode()


def optional_int(record: Mapping[bytes, bytes], field: str) -> int | None:
    """'' or missing = None (the schema's 'no limit')."""
    value = text(record, field)
    return int(value) if value else None


def allowlist(record: Mapping[bytes, bytes]) -> list[str]:
    return json.loads(text(record, "allow_src") or "[]")


def limit_arg(value: int | None) -> str:
    """A limit as the scripts read it: '' = none."""
    return "" if value is None else str(value)


def flag_arg(field: str, value: bool) -> str:
    """An on/off setting as the scripts read it: '1' | '0'; anything but a bool is refused."""
    if not isinstance(value, bool):
        raise InvalidField(field, "must be true or false")
    return "1" if value else "0"
