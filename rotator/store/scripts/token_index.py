"""Wrappers of the imported-token index's scripts (store/token_index.py uses them)."""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_CLAIM = load("token_index_claim")
_SWAP = load("token_index_swap")
_MARK = load("token_index_mark")
_LOOKUP = load("token_lookup")


class Claimed(NamedTuple):
    token_hash: str
    owner: str
    entry: str
    """The entry the claim wrote ("<owner> <ms> <nonce>"), which `confirm` replaces."""


class Refused(NamedTuple):
    owner: str
    """The owner the entry names: holding the token, or importing it."""


def claim(
    token_hash: str, owner: str, *, stale: str = "", pending_ms: int, now_ms: int | None = None
) -> Call[Claimed | Refused]:
    """Point kr:tok:<hash> at `owner` unless another owner holds it (`stale`: an entry the
    caller found pointing where the token no longer works, replaced only if still there and
    no claim of the last `pending_ms`). `now_ms`: None = the node's clock (production)."""

    def reply(raw: Any) -> Claimed | Refused:
        won, text = raw[0], raw[1].decode()
        return Claimed(token_hash, owner, text) if won == 1 else Refused(text)

    now = "" if now_ms is None else now_ms
    args = (owner, stale, pending_ms, now, secrets.token_hex(4))
    return Call(_CLAIM, (keys.token_index(token_hash),), args, reply)


def swap(token_hash: str, expected: str, replacement: str) -> Call[bool]:
    """Replace kr:tok:<hash> only if it is `expected` ('' replacement: delete it)."""
    return Call(_SWAP, (keys.token_index(token_hash),), (expected, replacement), decode.flag)


def confirm(claimed: Claimed) -> Call[bool]:
    """After the owner's hash is written: the claim becomes "<owner>". False when the entry
    is no longer this claim."""
    return swap(claimed.token_hash, claimed.entry, claimed.owner)


def mark(token_hash: str, owner: str) -> Call[Claimed | None]:
    """A release's first step: `owner`'s confirmed entry becomes a claim of its own; None
    when the entry is anything else."""

    def reply(raw: Any) -> Claimed | None:
        return Claimed(token_hash, owner, raw.decode()) if raw else None

    return Call(_MARK, (keys.token_index(token_hash),), (owner, secrets.token_hex(4)), reply)


def _owner(reply: Any) -> str | None:
    return reply.decode() if reply else None


def lookup(token_hash: str) -> Call[str | None]:
    """Whose the imported token is ("<tenant>" or "<tenant>:<app id>"), None when unknown."""
    return Call(_LOOKUP, (keys.token_index(token_hash),), (), _owner)
