"""StoreContext.call: the one place the API, the console and the CLI bind their context (store
clients, key ring, clock, events cap) to a store function's parameters."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.domain.clock import DAY_MS
from rotator.store_context import StoreContext


class Settings:
    events_maxlen = 500
    usage_retention_days = 35


class Caller(StoreContext):
    def __init__(self) -> None:
        self.redis = "R"
        self.durability = "D"
        self.keyring = "K"
        self.settings = Settings()
        self.now = 1_000

    def now_ms(self) -> int:
        return self.now


async def write(
    redis: Any,
    durability: Any,
    keyring: Any,
    tenant: str,
    slug: str,
    *,
    label: str,
    now_ms: int,
    events_maxlen: int,
) -> tuple:
    return (redis, durability, keyring, tenant, slug, label, now_ms, events_maxlen)


async def read(redis: Any, tenant: str) -> tuple:
    return (redis, tenant)


async def sealed(redis: Any, keyring: Any, tenant: str, *, now_ms: int | None = None) -> tuple:
    return (redis, keyring, tenant, now_ms)


async def usage(redis: Any, tenant: str, *, today: int, days: int, retention_days: int) -> tuple:
    return (redis, tenant, today, days, retention_days)


async def test_today_is_the_utc_day_of_the_callers_clock() -> None:
    caller = Caller()
    caller.now = 3 * DAY_MS - 1  # the last millisecond of day 2
    assert await caller.call(usage, "t1", days=7) == ("R", "t1", 2, 7, 35)
    caller.now += 1
    assert (await caller.call(usage, "t1", days=7))[2] == 3


async def test_every_context_value_the_function_declares_is_passed() -> None:
    got = await Caller().call(write, "t1", "svc", label="a")
    assert got == ("R", "D", "K", "t1", "svc", "a", 1_000, 500)


async def test_only_what_the_function_declares_is_passed() -> None:
    assert await Caller().call(read, "t1") == ("R", "t1")


async def test_clients_are_matched_by_name_not_position() -> None:
    # redis then keyring, no durability: the leading clients are those the function names
    assert await Caller().call(sealed, "t1") == ("R", "K", "t1", 1_000)


async def test_the_clock_is_read_at_each_call() -> None:
    caller = Caller()
    await caller.call(sealed, "t1")
    caller.now = 2_000
    assert (await caller.call(sealed, "t1"))[3] == 2_000


async def test_a_keyword_given_by_the_caller_wins() -> None:
    assert (await Caller().call(sealed, "t1", now_ms=7))[3] == 7


async def test_a_missing_argument_still_fails_loudly() -> None:
    with pytest.raises(TypeError):
        await Caller().call(write, "t1", "svc")
