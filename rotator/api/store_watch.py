"""Each API process checks, every STORE_MARKS_EVERY_S, that the store still holds the marks
`serve` wrote at start (rotator/store/marks.py). When they vanish while it runs, the store
lost its data: it says so in one ERROR line and writes them again where that is sound, so
that what is written next is checked against the master key and never read as format 1.
A read that succeeds after 503s also ends the outage's folded log (api/errors.py).
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisClusterException, RedisError

from rotator.api.errors import store_answers
from rotator.api.state import AppState
from rotator.cancel import Background
from rotator.store import marks
from rotator.tuning import STORE_MARKS_EVERY_S

log = logging.getLogger("rotator.api")


class StoreWatch(Background):
    def __init__(self, state: AppState, *, every_s: float = STORE_MARKS_EVERY_S) -> None:
        self.state = state
        self.every_s = every_s
        self.seen = False
        """The marks were in the store once: a store this process never saw marked (an app
        built on a bare store, not started by `serve`) is not one that lost them."""
        self.said = False
        """This loss was logged (one line each time the marks vanish)."""

    async def start(self) -> None:
        await self.check()  # the marks `serve` just wrote: seen before any request
        self.launch("store-marks")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.check()

    async def check(self) -> None:
        """One look; a store that does not answer is someone else's to report."""
        state = self.state
        assert state.redis is not None
        try:
            found = await marks.read(state.redis)
            store_answers()
            if found.canary and found.schema:
                self.seen, self.said = True, False
                return
            if not self.seen:
                return
            problems = await marks.write_again(
                state.redis, state.durability, state.keyring, now_ms=state.now_ms()
            )
        except (RedisError, RedisClusterException, OSError):
            return
        if self.said:
            return
        self.said = True
        lost = " and ".join(found.missing())
        if problems:
            log.error(
                "the store lost %s while this process ran (emptied, or replaced by other data); "
                "cannot write it again: %s",
                lost, "; ".join(problems),
            )  # fmt: skip
        else:
            log.error(
                "the store lost %s while this process ran (FLUSHALL, or Valkey restarted "
                "without its data?): the tenants and keys it held are gone, their deliveries "
                "answer 403 until a backup is restored (`rotator restore`); written again "
                "for the data it holds now",
                lost,
            )
