"""signin_attempt.lua called through its wrapper on a real Valkey: its three modes share
one counter and one window."""

from __future__ import annotations

import pytest

from rotator.store import keys
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.sessions import SigninWindow, signin_attempt

pytestmark = pytest.mark.backends("single", "cluster")

ADDRESS = "203.0.113.9"
WINDOW_MS = 60_000


async def attempt(redis, count) -> SigninWindow:
    return await run(Plain(redis), signin_attempt(ADDRESS, window_ms=WINDOW_MS, count=count))


async def test_a_right_token_is_judged_as_one_more_attempt_and_counted_nowhere(redis):
    assert await attempt(redis, 0) == SigninWindow(1, 0)
    assert await redis.exists(keys.signin_failures(ADDRESS)) == 0  # no window opened
    await attempt(redis, 1)
    await attempt(redis, 1)
    judged = await attempt(redis, 0)
    assert judged.attempts == 3 and 0 < judged.left_ms <= WINDOW_MS
    assert (await attempt(redis, 1)).attempts == 3  # the judged one took no place


async def test_taking_back_never_goes_below_zero_nor_opens_a_window(redis):
    assert await attempt(redis, -1) == SigninWindow(0, 0)
    assert await redis.exists(keys.signin_failures(ADDRESS)) == 0
    await attempt(redis, 1)
    assert (await attempt(redis, -1)).attempts == 0
    assert (await attempt(redis, -1)).attempts == 0
