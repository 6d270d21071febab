"""The script layer on a real Valkey: one wrapper runs on every client (FastRedis, redis-py,
the durable pipeline), NOSCRIPT is answered once, and the prelude's shared steps (clock, id
lists, event emission) behave as the scripts rely on."""

from __future__ import annotations

import hashlib
import json

import pytest

from rotator.store import keys
from rotator.store.connection import Durability
from rotator.store.fastredis import FastRedis
from rotator.store.scripts import PRELUDE, Script, _lib, load
from rotator.store.scripts.call import Call, Durable, Plain, run
from rotator.store.scripts.records import field_cas
from rotator.store.scripts.sessions import SigninWindow, signin_attempt

pytestmark = pytest.mark.backends("single", "cluster")

TAG = "{t:lay}"
HOSTILE = 'He said "hi" \\ / \n\t\x01 \u00e9\U0001f600\u2028 </script>'


def with_prelude(body: str) -> Script:
    """A throwaway script with the prelude prepended, as the loader prepends it."""
    source = _lib(PRELUDE) + body.encode()
    return Script("test", source, hashlib.sha1(source).hexdigest())


def raw(script: Script, keys_: list[str], args: list) -> Call:
    return Call(script, keys_, args, lambda reply: reply)


async def _exists(redis, sha: str) -> list[bool]:
    found = await redis.script_exists(sha)
    return found if isinstance(found, list) else [found]


@pytest.fixture
async def fast(settings):
    client = await FastRedis.connect(
        settings.redis_url, timeout_ms=2000, cluster=settings.redis_cluster
    )
    yield client
    await client.close()


@pytest.fixture(params=["fast", "plain", "durable"])
async def client(request, redis, fast):
    """Each client a wrapper may be sent through."""
    return {"fast": fast, "plain": Plain(redis), "durable": Durable(redis, Durability())}[
        request.param
    ]


async def test_one_wrapper_runs_on_every_client_and_decodes_its_reply(client, redis):
    h = f"{TAG}:svc:s"
    await redis.hset(h, "c:1", b"old")
    assert await run(client, field_cas(h, "c:1", b"old", b"new")) is True
    assert await run(client, field_cas(h, "c:1", b"old", b"newer")) is False
    assert await redis.hget(h, "c:1") == b"new"
    window = await run(client, signin_attempt("203.0.113.9", window_ms=60_000))
    assert isinstance(window, SigninWindow)
    assert window.attempts == 1
    assert 0 < window.left_ms <= 60_000


async def test_a_flushed_script_cache_is_answered_once_by_the_source(client, redis):
    h = f"{TAG}:svc:s"
    await redis.hset(h, "c:1", b"a")
    await run(client, field_cas(h, "c:1", b"a", b"b"))
    await redis.script_flush()  # on a cluster: every primary
    assert not any(await _exists(redis, field_cas(h, "c:1", b"", b"").script.sha))
    assert await run(client, field_cas(h, "c:1", b"b", b"c")) is True  # NOSCRIPT, then EVAL
    assert await redis.hget(h, "c:1") == b"c"


@pytest.mark.parametrize("kind", ["plain", "durable"])
async def test_calls_on_several_slots_go_in_one_batch(kind, redis):
    batch = Plain(redis) if kind == "plain" else Durable(redis, Durability())
    names = [f"{{t:b{i}}}:svc:s" for i in range(5)]  # five tenants: five hash slots
    for name in names:
        await redis.hset(name, "c:1", b"x")
    replies = await batch.run_many([field_cas(n, "c:1", b"x" if i % 2 else b"no", b"y")
                                    for i, n in enumerate(names)])  # fmt: skip
    assert replies == [False, True, False, True, False]
    assert [await redis.hget(n, "c:1") for n in names] == [b"x", b"y", b"x", b"y", b"x"]


async def test_durable_runs_the_commands_before_the_script_on_its_pipeline(redis):
    h = f"{TAG}:svc:s"
    await redis.hset(h, "c:1", b"a")

    def before(pipe) -> None:
        pipe.hset(h, "c:1", b"set-before")

    durable = Durable(redis, Durability(), before=before)
    assert await run(durable, field_cas(h, "c:1", b"set-before", b"then-swapped")) is True
    assert await redis.hget(h, "c:1") == b"then-swapped"


async def test_every_script_carries_the_prelude_after_its_shebang():
    for name in ("next_key", "backup_read", "tenant_update"):
        source = load(name).source
        own = source[source.index(_lib(PRELUDE)) + len(_lib(PRELUDE)) :]
        assert _lib(PRELUDE) in source
        assert not own.startswith(b"#!")
    assert load("backup_read").source.startswith(b"#!lua flags=no-writes\n")


async def test_prelude_clock_is_the_injected_time_or_redis_time(fast, redis):
    clock = with_prelude("return {clock_ms(ARGV[1]), clock_ms('')}")
    seconds, micros = await redis.time()
    injected, server = await run(fast, raw(clock, [f"{TAG}:x"], ["1772366400123"]))
    assert injected == 1772366400123
    assert abs(server - (seconds * 1000 + micros // 1000)) < 5_000


async def test_prelude_split_ids(fast):
    split = with_prelude("return {#split_ids(ARGV[1]), #split_ids(''), #split_ids(nil), "
                         "split_ids(ARGV[1])[2]}")  # fmt: skip
    assert await run(fast, raw(split, [f"{TAG}:x"], ["3,17,9"])) == [3, 0, 0, b"17"]


async def test_prelude_emit_encodes_hostile_strings_and_honours_subscriptions(fast, redis):
    emit = with_prelude(
        "local a = emit(KEYS[1], 100, ARGV[1], 'key.expired', {service = ARGV[2], label = ARGV[2]})"
        "\nlocal b = emit(KEYS[1], 100, ARGV[1], 'key.rotated', {service = ARGV[2]})"
        "\nreturn {a or '', b or ''}"
    )
    stream = keys.events("lay")
    entry, skipped = await run(fast, raw(emit, [stream], [",key.expired,", HOSTILE]))
    assert entry and skipped == b""  # key.rotated: not subscribed, not recorded
    [(entry_id, fields)] = await redis.xrange(stream)
    assert entry_id == entry
    assert fields[b"type"] == b"key.expired"
    assert json.loads(fields[b"data"]) == {"service": HOSTILE, "label": HOSTILE}


async def test_prelude_emit_daily_records_once_per_flag(fast, redis):
    daily = with_prelude(
        "return emit_daily(KEYS[2], 3600, KEYS[1], 100, ',service.limit_reached,', "
        "'service.limit_reached', {limit = 5}, ARGV[1]) or ''"
    )
    stream, usage = keys.events("lay"), keys.usage("lay", 20_000)
    first = await run(fast, raw(daily, [stream, usage], ["lr:s:5"]))
    again = await run(fast, raw(daily, [stream, usage], ["lr:s:5"]))
    changed = await run(fast, raw(daily, [stream, usage], ["lr:s:6"]))
    assert first and changed and again == b""
    assert await redis.xlen(stream) == 2
    assert 0 < await redis.ttl(usage) <= 3600
