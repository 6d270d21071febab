"""Claims: one process at a time for work that two would spoil (two restores into one empty
store would merge their files). A claim is a string key holding its holder's description,
set only if absent, that lapses CLAIM_TTL_MS after its holder last kept it: a holder that
dies frees it by itself, one that lives keeps it at each step of its work."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from rotator.domain.clock import iso_ms
from rotator.domain.errors import RotatorError
from rotator.store.connection import Redis
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.records import claim

CLAIM_TTL_MS = 60_000


class Claimed(RotatorError):
    """Another process holds the claim (or this one lost it): nothing was done."""


class Claim:
    def __init__(self, redis: Redis, name: str, value: str, what: str) -> None:
        self.redis, self.name, self.value, self.what = redis, name, value, what

    async def keep(self) -> None:
        """Hold the claim CLAIM_TTL_MS more; Claimed if it lapsed (this process stalled that
        long) and so another may be at work."""
        if not await run(Plain(self.redis), claim(self.name, self.value, keep_ms=CLAIM_TTL_MS)):
            raise Claimed(
                f"this {self.what} stalled over {CLAIM_TTL_MS // 1000} s and lost its claim "
                f"({self.name}); stopped here: run it again"
            )


@asynccontextmanager
async def claimed(
    redis: Redis, name: str, *, what: str, about: str, now_ms: int
) -> AsyncIterator[Claim]:
    """Hold `name` for the block; Claimed, naming the holder, when another process holds it.
    `about` says what this holder works on (a file name), for the one refused."""
    value = json.dumps({
        "what": about, "since_ms": now_ms, "host": socket.gethostname(), "pid": os.getpid(),
        "nonce": secrets.token_hex(8),
    })  # fmt: skip
    if not await redis.set(name, value, nx=True, px=CLAIM_TTL_MS):
        raise Claimed(f"another {what} is running: " + _holder(await redis.get(name)))
    try:
        yield Claim(redis, name, value, what)
    finally:
        with suppress(Exception):  # the store gone: the claim lapses by itself
            await run(Plain(redis), claim(name, value, keep_ms=0))


def _holder(raw: bytes | None) -> str:
    try:
        held = json.loads(raw or b"")
        return (
            f"{held['what']}, since {iso_ms(held['since_ms'])}, pid {held['pid']} on "
            f"{held['host']}; wait for it to finish (if it died, its claim lapses within "
            f"{CLAIM_TTL_MS // 1000} s)"
        )
    except (ValueError, KeyError, TypeError):
        return "it finished just now, or its claim is unreadable; try again"
