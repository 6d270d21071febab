"""Wrappers of the imported-token index's scripts (store/token_index.py uses them)."""

from __future__ import annotations

from typing import Any, NamedTuple

from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call

_CLAIM = load("token_index_claim")
_RELEASE = load("token_index_release")
_LOOKUP = load("token_lookup")


class Claim(NamedTuple):
    won: bool
    owner: str
    """The entry as it is now: ours when won, else the owner that holds it."""


def _claim_reply(reply: Any) -> Claim:
    won, owner = reply
    return Claim(won == 1, owner.decode() if isinstance(owner, bytes) else str(owner))


def claim(token_hash: str, owner: str, *, stale: str = "", now_ms: int) -> Call[Claim]:
    """Point kr:tok:<hash> at `owner` as of `now_ms` unless another owner holds it (`stale`:
    an entry the caller found pointing where the token no longer works, replaced only if
    still there)."""
    return Call(_CLAIM, (keys.token_index(token_hash),), (owner, stale, now_ms), _claim_reply)


def release(token_hash: str, owner: str) -> Call[bool]:
    """Remove kr:tok:<hash> if it still names `owner`."""
    return Call(_RELEASE, (keys.token_index(token_hash),), (owner,), decode.flag)


def _owner(reply: Any) -> str | None:
    return reply.decode() if reply else None


def lookup(token_hash: str) -> Call[str | None]:
    """Whose the imported token is ("<tenant>" or "<tenant>:<app id>"), None when unknown."""
    return Call(_LOOKUP, (keys.token_index(token_hash),), (), _owner)
