"""Masking: a short recognisable prefix (`sk-`, `sk-proj-`) and the last 4 characters.

Everything between is `•`. Short keys reveal less: the suffix only when at least
8 characters stay hidden, the prefix only when at least 8 stay hidden besides it.
"""

from __future__ import annotations

import re

BULLET = "•"
_PREFIX = re.compile(r"^(?:[a-z]{1,6}[-_]){1,2}")
_MIN_HIDDEN = 8


def mask(key: str) -> str:
    match = _PREFIX.match(key)
    prefix = match.group(0) if match else ""
    suffix_len = 4
    if len(key) - len(prefix) - suffix_len < _MIN_HIDDEN:
        prefix = ""
    if len(key) - len(prefix) - suffix_len < _MIN_HIDDEN:
        suffix_len = 0
    hidden = len(key) - len(prefix) - suffix_len
    return prefix + BULLET * hidden + (key[-suffix_len:] if suffix_len else "")
