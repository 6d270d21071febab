"""FastRedis on a real Valkey: pipelined replies in order, errors, NOSCRIPT, failures, recovery."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from rotator.domain.errors import StoreUnavailable
from rotator.embedded import EmbeddedValkey, free_port
from rotator.store.fastredis import FastRedis, ReplyError
from rotator.store.scripts import Script


def script(source: str) -> Script:
    data = source.encode()
    return Script("test", data, hashlib.sha1(data).hexdigest())


ECHO_INCR = script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}")
SHAPES = script(
    "return {1, 'two', {3, 'four', {}}, redis.call('GET', 'missing'), redis.status_reply('FINE')}"
)
LUA_ERROR = script("return redis.error_reply('MYERR bad input')")


@pytest.fixture
async def fast(valkey: EmbeddedValkey, redis: aioredis.Redis) -> AsyncIterator[FastRedis]:
    client = await FastRedis.connect(valkey.url, timeout_ms=2000)
    yield client
    await client.close()


@pytest.fixture
def lone_server(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A server of the test's own, to stop, freeze and kill."""
    server = EmbeddedValkey(tmp_path / "lone", appendonly=False)
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


async def test_concurrent_calls_get_their_own_replies_in_order(fast: FastRedis) -> None:
    replies = await asyncio.gather(*(fast.evalsha(ECHO_INCR, ["n"], [i]) for i in range(1000)))

    assert [reply[1] for reply in replies] == [str(i).encode() for i in range(1000)]
    assert [reply[2] for reply in replies] == list(range(1, 1001))
    assert await fast.execute("GET", "n") == b"1000"


async def test_reply_shapes_match_redis_py(fast: FastRedis, redis: aioredis.Redis) -> None:
    ours = await fast.evalsha(SHAPES, [], [])
    theirs = await redis.evalsha(SHAPES.sha, 0)

    assert ours == theirs == [1, b"two", [3, b"four", []], None, b"FINE"]
    assert await fast.execute("SET", "s", "v") == b"OK"
    assert await fast.execute("GET", "s") == b"v"
    assert await fast.execute("GET", "nothing") is None
    assert await fast.execute("DEL", "s") == 1


async def test_error_replies_raise_and_do_not_desync_the_others(fast: FastRedis) -> None:
    await fast.execute("SET", "text", "not a number")

    async def call(i: int) -> Any:
        if i % 3 == 0:
            return await fast.execute("INCR", "text")
        return await fast.evalsha(ECHO_INCR, ["counter"], [i])

    results = await asyncio.gather(*(call(i) for i in range(300)), return_exceptions=True)

    for i, result in enumerate(results):
        if i % 3 == 0:
            assert isinstance(result, ReplyError)
            assert result.message.startswith("ERR value is not an integer")
        else:
            assert result[1] == str(i).encode()
    assert sorted(r[2] for r in results if not isinstance(r, Exception)) == list(range(1, 201))


async def test_script_error_reply_raises_reply_error(fast: FastRedis) -> None:
    with pytest.raises(ReplyError, match="MYERR bad input"):
        await fast.evalsha(LUA_ERROR, [], [])
    assert await fast.execute("PING") == b"PONG"


async def test_noscript_is_answered_by_eval_transparently(
    fast: FastRedis, redis: aioredis.Redis
) -> None:
    assert (await fast.evalsha(ECHO_INCR, ["k"], ["a"]))[2] == 1
    await redis.script_flush()
    assert await redis.script_exists(ECHO_INCR.sha) == [False]

    replies = await asyncio.gather(*(fast.evalsha(ECHO_INCR, ["k"], [i]) for i in range(50)))

    assert sorted(reply[2] for reply in replies) == list(range(2, 52))
    assert [reply[1] for reply in replies] == [str(i).encode() for i in range(50)]
    assert await redis.script_exists(ECHO_INCR.sha) == [True]


async def test_cancelled_call_does_not_shift_the_next_reply(fast: FastRedis) -> None:
    task = asyncio.create_task(fast.execute("INCR", "c"))
    await asyncio.sleep(0)  # the command is queued; its reply has not arrived
    task.cancel()

    assert await fast.execute("INCR", "c") == 2  # the cancelled INCR still ran
    assert task.cancelled()


async def test_url_selects_database(valkey: EmbeddedValkey, redis: aioredis.Redis) -> None:
    client = await FastRedis.connect(valkey.url + "/3", timeout_ms=2000)
    try:
        await client.execute("SET", "in-db-3", "yes")
    finally:
        await client.close()

    assert await redis.get("in-db-3") is None
    db3 = aioredis.Redis.from_url(valkey.url + "/3")
    assert await db3.get("in-db-3") == b"yes"
    await db3.aclose()


async def test_connect_to_nothing_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await FastRedis.connect(f"redis://127.0.0.1:{free_port()}", timeout_ms=500)


async def test_closed_client_fails_calls(valkey: EmbeddedValkey) -> None:
    client = await FastRedis.connect(valkey.url, timeout_ms=500)
    await client.close()

    with pytest.raises(StoreUnavailable):
        await client.execute("PING")


async def test_unanswered_calls_fail_with_store_unavailable_then_recover(
    lone_server: EmbeddedValkey,
) -> None:
    client = await FastRedis.connect(lone_server.url, timeout_ms=200)
    assert await client.execute("PING") == b"PONG"
    assert lone_server.process is not None
    os.kill(lone_server.process.pid, signal.SIGSTOP)
    try:
        async with asyncio.timeout(5):  # a guard against hanging, not a measurement
            results = await asyncio.gather(
                *(client.execute("INCR", "x") for _ in range(20)), return_exceptions=True
            )
        with pytest.raises(StoreUnavailable):  # accepted by the kernel, never answered
            await FastRedis.connect(lone_server.url, timeout_ms=200)
    finally:
        os.kill(lone_server.process.pid, signal.SIGCONT)

    assert all(isinstance(result, StoreUnavailable) for result in results)
    attempts = client.connect_attempts
    assert await until_answered(client) == b"PONG"  # same client, no restart
    assert client.connect_attempts > attempts
    await client.close()


async def test_killed_server_fails_fast_and_restart_recovers(lone_server: EmbeddedValkey) -> None:
    client = await FastRedis.connect(lone_server.url, timeout_ms=1000)
    assert await client.execute("SET", "k", "1") == b"OK"
    port, data_dir = lone_server.port, lone_server.data_dir
    lone_server.kill()

    first = await asyncio.gather(
        *(client.execute("INCR", "k") for _ in range(20)), return_exceptions=True
    )
    attempts = client.connect_attempts
    second = await asyncio.gather(
        *(client.execute("INCR", "k") for _ in range(100)), return_exceptions=True
    )

    assert all(isinstance(result, StoreUnavailable) for result in first + second)
    # 100 callers share at most one attempt (none while the last one's failure is fresh)
    assert client.connect_attempts - attempts <= 1

    restarted = EmbeddedValkey(data_dir, port=port, appendonly=False)
    restarted.start()
    try:
        assert await until_answered(client) == b"PONG"
        assert await client.execute("INCR", "k") == 1  # a fresh server, the same client
    finally:
        await client.close()
        restarted.stop()


async def until_answered(client: FastRedis, attempts: int = 100) -> Any:
    """PING until the client has reconnected (it fails fast between connect attempts)."""
    for _ in range(attempts):
        try:
            return await client.execute("PING")
        except StoreUnavailable:
            await asyncio.sleep(0.05)
    raise AssertionError("the client never reconnected")


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    """A server with a unix socket and a password-protected ACL user."""
    data_dir = tmp_path_factory.mktemp("acl")
    server = EmbeddedValkey(
        data_dir,
        appendonly=False,
        extra_args=("--unixsocket", str(data_dir / "v.sock"), "--unixsocketperm", "700"),
    )
    server.start()
    admin = sync_redis.Redis(host=server.host, port=server.port)
    admin.execute_command("ACL", "SETUSER", "alice", "on", ">s3cret p@ss", "~*", "&*", "+@all")
    admin.close()
    yield server
    server.stop()


async def test_user_and_password_in_url_authenticate(acl_server: EmbeddedValkey) -> None:
    url = f"redis://alice:s3cret%20p%40ss@{acl_server.host}:{acl_server.port}/2"
    client = await FastRedis.connect(url, timeout_ms=2000)
    try:
        assert await client.execute("ACL", "WHOAMI") == b"alice"
        await client.execute("SET", "who", "alice")
    finally:
        await client.close()
    check = sync_redis.Redis(host=acl_server.host, port=acl_server.port, db=2)
    assert check.get("who") == b"alice"
    check.close()


async def test_wrong_password_is_reported_at_connect(acl_server: EmbeddedValkey) -> None:
    url = f"redis://alice:wrong@{acl_server.host}:{acl_server.port}"
    with pytest.raises(ReplyError, match="WRONGPASS"):
        await FastRedis.connect(url, timeout_ms=2000)


async def test_unix_socket_url(acl_server: EmbeddedValkey) -> None:
    client = await FastRedis.connect(
        f"unix://{acl_server.data_dir / 'v.sock'}?db=1", timeout_ms=2000
    )
    try:
        assert (await client.evalsha(ECHO_INCR, ["u"], ["x"]))[2] == 1
    finally:
        await client.close()
    check = sync_redis.Redis(host=acl_server.host, port=acl_server.port, db=1)
    assert check.get("u") == b"1"
    check.close()
