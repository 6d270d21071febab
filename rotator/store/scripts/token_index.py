"""Wrappers of the imported-token index's scripts (store/token_index.py uses them)."""

from __future__ import annotations

from typing import Any, NamedTuple

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_CLAIM = load("token_index_claim")
_CONFIRM = load("token_index_confirm")
_RELEASE = load("token_index_release")
_LOOKUP = load("token_lookup")


class Claimed(NamedTuple):
    token_hash: str
    owner: str
    entry: str
    """The entry the claim wrote ("<owner> <ms>"), which `confirm` replaces."""


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
    return Call(_CLAIM, (keys.token_index(token_hash),), (owner, stale, pending_ms, now), reply)


def confirm(claimed: Claimed) -> Call[bool]:
    """After the owner's hash is written: the claim becomes "<owner>". False when another
    owner took the entry over meanwhile."""
    return Call(
        _CONFIRM,
        (keys.token_index(claimed.token_hash),),
        (claimed.entry, claimed.owner),
        decode.flag,
    )


def release(token_hash: str, owner: str) -> Call[bool]:
    """Remove kr:tok:<hash> if it names `owner`, confirmed."""
    return Call(_RELEASE, (keys.token_index(token_hash),), (owner,), decode.flag)


def _owner(reply: Any) -> str | None:
    return reply.decode() if reply else None


def lookup(token_hash: str) -> Call[str | None]:
    """Whose the imported token is ("<tenant>" or "<tenant>:<app id>"), None when unknown."""
    return Call(_LOOKUP, (keys.token_index(token_hash),), (), _owner)
