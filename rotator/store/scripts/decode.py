"""Reply decoders the wrappers share (replies have redis-py's shapes: bytes, int, list, None)."""

from __future__ import annotations

from typing import Any


def integer(reply: Any) -> int:
    return int(reply)


def optional_integer(reply: Any) -> int | None:
    """An integer, None for nil (a script's false)."""
    return None if reply is None else int(reply)


def flag(reply: Any) -> bool:
    """1 / 0 (or nil) as a bool."""
    return bool(reply)


def text(reply: Any) -> str:
    """A bulk string ('' for nil)."""
    if reply is None or reply is False:
        return ""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def raw(reply: Any) -> Any:
    return reply
