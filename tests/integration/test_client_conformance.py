"""One suite, two clients: FastRedis (the hot path) and redis-py (everything else) answer alike.

FastRedis stays because it is fast (issue #13: 9.5 us of client CPU per call against 32 us
for the best alternative); it is fenced in by this suite. Every test runs over both
clients (`kind`: "fast", "redis-py") on a single server and on a cluster, each built as
production builds it (FastRedis.connect, rotator.store.connection.connect), and checks
the same expected literal: so where the two differ, one of the cases fails.

What the two share is the interface the hot path uses: `evalsha(script, keys, args)`
(NOSCRIPT answered by sending the source) and `execute(*args)` for commands without
redis-py response callbacks. An outcome is read the same way for both (`outcome`): the
reply as it is, an error reply as ("error", its message without the error code, which
redis-py strips for the codes it knows), or "unavailable" (the store cannot be reached
or did not answer in time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
from redis.exceptions import NoScriptError, ResponseError

from rotator.domain.errors import StoreUnavailable
from rotator.embedded import EmbeddedValkey
from rotator.settings import Settings
from rotator.store import connection
from rotator.store.connection import is_unavailable
from rotator.store.fast.cluster import key_slot
from rotator.store.fastredis import FastRedis, ReplyError
from rotator.store.scripts import Script
from tests.cluster import ValkeyCluster

pytestmark = pytest.mark.backends("single", "cluster")

KINDS = ("fast", "redis-py")


def script(source: str) -> Script:
    data = source.encode()
    return Script("conformance", data, hashlib.sha1(data).hexdigest())


class Client(Protocol):
    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any: ...
    async def execute(self, *args: Any) -> Any: ...
    async def close(self) -> None: ...


class RedisPy:
    """redis-py behind FastRedis's interface, calling it as the management code does
    (EVALSHA, the source once on NOSCRIPT)."""

    def __init__(self, client: connection.Redis) -> None:
        self.client = client

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            return await self.client.eval(script.source, len(keys), *keys, *args)  # type: ignore[misc]

    async def execute(self, *args: Any) -> Any:
        return await self.client.execute_command(*args)

    async def close(self) -> None:
        await self.client.aclose()


async def open_client(kind: str, url: str, *, cluster: bool, timeout_ms: int = 2000) -> Client:
    if kind == "fast":
        return await FastRedis.connect(url, timeout_ms=timeout_ms, cluster=cluster)
    settings = Settings(redis_url=url, redis_cluster=cluster, redis_timeout_ms=timeout_ms)
    return RedisPy(connection.connect(settings))


def _message(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ReplyError) else str(exc)
    code, _, rest = text.partition(" ")
    return rest if code.isupper() and rest else text


def _normal(reply: Any) -> Any:
    """Error replies nested in an array, read as top-level ones are."""
    if isinstance(reply, list):
        return [_normal(item) for item in reply]
    if isinstance(reply, (ReplyError, ResponseError)):
        return ("error", _message(reply))
    return reply


async def outcome(call: Awaitable[Any]) -> Any:
    """The reply, ("error", message) or "unavailable", alike for both clients."""
    try:
        return _normal(await call)
    except StoreUnavailable:
        return "unavailable"
    except (ReplyError, ResponseError) as exc:
        return ("error", _message(exc))
    except Exception as exc:
        if is_unavailable(exc):
            return "unavailable"
        raise


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def client(kind: str, settings: Settings, redis: Any) -> AsyncIterator[Client]:
    """`kind`'s client of the test's (flushed) store; `redis` flushes it first."""
    c = await open_client(kind, str(settings.redis_url), cluster=settings.redis_cluster)
    yield c
    await c.close()


# --- replies -------------------------------------------------------------------------------
REPLIES = [
    ("return nil", None),
    ("return false", None),
    ("return true", 1),
    ("return 0", 0),
    ("return -42", -42),
    ("return 2^53", 2**53),
    ("return 3.99", 3),  # Lua numbers become integers, truncated
    ("return ''", b""),
    ("return 'caf\\195\\169'", "café".encode()),
    ("return 'a\\0b\\255'", b"a\x00b\xff"),  # binary-safe, not UTF-8
    ("return {}", []),
    ("return {1, 'two', {3, {'four', {}}}, -5}", [1, b"two", [3, [b"four", []]], -5]),
    ("return {1, nil, 3}", [1]),  # a Lua array ends at its first nil
    ("return {1, false, 3}", [1, None, 3]),
    ("return redis.status_reply('FINE')", b"FINE"),
    ("return {redis.status_reply('OK'), 'x'}", [b"OK", b"x"]),
    ("return redis.error_reply('MYERR bad input')", ("error", "bad input")),
    ("return {1, redis.error_reply('INNER nested')}", [1, ("error", "nested")]),
    ("return {err = 'TABLE as error'}", ("error", "as error")),
    ("return redis.call('GET', KEYS[1])", None),
    ("return redis.call('INCRBY', KEYS[1], ARGV[1])", 7),
    ("return {KEYS[1], ARGV[1], ARGV[2]}", [b"{t:c}:k", b"7", b"\xff\x00"]),
]


@pytest.mark.parametrize(("source", "expected"), REPLIES, ids=[s for s, _ in REPLIES])
async def test_script_replies_have_one_shape(client: Client, source: str, expected: Any) -> None:
    got = await outcome(client.evalsha(script(source), ["{t:c}:k"], [7, b"\xff\x00"]))
    assert got == expected


async def test_a_runtime_error_in_a_script_is_an_error_reply(client: Client) -> None:
    await client.execute("SET", "{t:c}:s", "text")
    got = await outcome(
        client.evalsha(script("return redis.call('INCR', KEYS[1])"), ["{t:c}:s"], [])
    )
    assert got[0] == "error" and "not an integer" in got[1]
    got = await outcome(client.evalsha(script("error('boom')"), ["{t:c}:s"], []))
    assert got[0] == "error" and "boom" in got[1]
    assert await client.execute("GET", "{t:c}:s") == b"text"  # the connection is still in step


async def test_commands_without_callbacks_answer_alike(client: Client) -> None:
    assert await client.execute("GET", "{t:c}:x") is None
    assert await client.execute("INCRBY", "{t:c}:x", 5) == 5
    assert await client.execute("GET", "{t:c}:x") == b"5"
    assert await client.execute("LPUSH", "{t:c}:l", "a", "b") == 2
    assert await client.execute("LRANGE", "{t:c}:l", 0, -1) == [b"b", b"a"]
    assert await client.execute("DEL", "{t:c}:x") == 1
    assert await outcome(client.execute("LPUSH", "{t:c}:l2", "a")) == 1
    assert await outcome(client.execute("INCR", "{t:c}:l2")) == (
        "error",
        "Operation against a key holding the wrong kind of value",
    )


async def test_concurrent_calls_get_their_own_replies(client: Client) -> None:
    echo = script("return {ARGV[1], redis.call('INCR', KEYS[1])}")
    replies = await asyncio.gather(*(client.evalsha(echo, ["{t:c}:n"], [i]) for i in range(200)))
    assert [r[0] for r in replies] == [str(i).encode() for i in range(200)]
    assert sorted(r[1] for r in replies) == list(range(1, 201))


async def test_noscript_after_script_flush_is_answered_transparently(
    client: Client, redis: Any
) -> None:
    counter = script("return redis.call('INCR', KEYS[1])")
    assert await client.evalsha(counter, ["{t:c}:f"], []) == 1
    await redis.script_flush()  # every primary, on a cluster
    assert await client.evalsha(counter, ["{t:c}:f"], []) == 2  # ran once, not twice
    assert await client.evalsha(counter, ["{t:c}:f"], []) == 3


# --- a slot migrating (cluster only) -------------------------------------------------------
def _cluster(backend: str, request: pytest.FixtureRequest) -> ValkeyCluster:
    assert backend == "cluster"  # slot migrations exist on a cluster only
    return request.getfixturevalue("valkey_cluster")


@pytest.mark.backends("cluster")
async def test_moved_is_followed_to_the_new_owner(
    client: Client, backend: str, request: pytest.FixtureRequest
) -> None:
    cluster = _cluster(backend, request)
    key = "{t:moved}:k"
    slot = key_slot(key)
    counter = script("return redis.call('INCR', KEYS[1])")
    assert await client.evalsha(counter, [key], []) == 1  # the client knows the owner now
    source = cluster.owner(slot)
    target = (source + 1) % 3
    cluster.migrate_slot(slot, source, target)
    try:
        # the client's map is stale: MOVED, then the call runs on the new owner, once
        assert await client.evalsha(counter, [key], []) == 2
        assert await client.evalsha(counter, [key], []) == 3
        assert cluster.clients[target].get(key) == b"3"
    finally:
        cluster.migrate_slot(slot, target, source)


@pytest.mark.backends("cluster")
async def test_ask_is_followed_during_a_migration(
    client: Client, backend: str, request: pytest.FixtureRequest
) -> None:
    cluster = _cluster(backend, request)
    key = "{t:ask}:k"
    slot = key_slot(key)
    counter = script("return redis.call('INCR', KEYS[1])")
    assert await client.evalsha(counter, [key], []) == 1
    source = cluster.owner(slot)
    target = (source + 1) % 3
    cluster.begin_migration(slot, source, target)
    try:
        cluster.move_keys(slot, source, target)  # the source answers ASK for the key now
        assert await client.evalsha(counter, [key], []) == 2
    finally:
        cluster.finish_migration(slot, target)
    try:
        assert cluster.clients[target].get(key) == b"2"
        assert await client.evalsha(counter, [key], []) == 3
    finally:
        cluster.migrate_slot(slot, target, source)


# --- servers of the module's own: restarts and timeouts ----------------------------------
@dataclasses.dataclass
class Own:
    """A store the tests may stop, freeze and restart: one server, or a cluster (then the
    node that serves KEY is the one stopped or frozen)."""

    url: str
    cluster: ValkeyCluster | None = None
    lone: EmbeddedValkey | None = None

    def server(self) -> EmbeddedValkey:
        if self.cluster is None:
            assert self.lone is not None
            return self.lone
        return self.cluster.nodes[self.cluster.owner(key_slot(KEY))]

    def pid(self) -> int:
        process = self.server().process
        assert process is not None
        return process.pid

    def wait_ok(self) -> None:
        if self.cluster is not None:
            self.cluster.wait_ok()


KEY = "{t:own}:k"


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(tmp_path_factory.mktemp("conformance-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Own]:
    if backend == "cluster":
        cluster = request.getfixturevalue("own_cluster")
        target = Own(cluster.url, cluster=cluster)
    else:
        lone = EmbeddedValkey(tmp_path / "lone", appendonly=False)
        lone.start()
        target = Own(lone.url, lone=lone)
    yield target
    for server in target.cluster.nodes if target.cluster else [target.lone]:
        assert server is not None
        if server.process is None:
            server.start()  # a test stopped it and failed before starting it again
        else:
            os.kill(server.process.pid, signal.SIGCONT)
    if target.lone is not None:
        target.lone.stop()
    else:
        target.wait_ok()


async def until_answered(call: Any, timeout_s: float = 15.0) -> list[Any]:
    """Outcomes of `call()` until one is not "unavailable" (the store coming back)."""
    outcomes: list[Any] = []
    async with asyncio.timeout(timeout_s):
        while not outcomes or outcomes[-1] == "unavailable":
            if outcomes:
                await asyncio.sleep(0.05)
            outcomes.append(await outcome(call()))
    return outcomes


async def test_a_restarted_server_is_reached_again(kind: str, own: Own) -> None:
    """A restart drops the connections and empties the script cache: calls are answered
    "unavailable" (never another error) until it is back, then run, NOSCRIPT handled."""
    c = await open_client(kind, own.url, cluster=own.cluster is not None)
    echo = script("return ARGV[1]")
    try:
        assert await c.evalsha(echo, [KEY], ["x"]) == b"x"
        server = own.server()
        server.stop()
        assert await outcome(c.evalsha(echo, [KEY], ["x"])) == "unavailable"
        server.start()
        own.wait_ok()
        outcomes = await until_answered(lambda: c.evalsha(echo, [KEY], ["x"]))
        assert set(outcomes[:-1]) <= {"unavailable"} and outcomes[-1] == b"x"
        assert len(outcomes) <= 2  # once the store is back, at most the one stale connection
        assert await c.evalsha(echo, [KEY], ["y"]) == b"y"
    finally:
        await c.close()


async def test_a_frozen_server_fails_concurrent_calls_within_one_timeout(
    kind: str, own: Own
) -> None:
    """Calls made together while the server is frozen (it accepts, never answers) each fail
    within about the timeout, not one timeout after another: redis-py's default pool used
    to open each new connection while holding its lock (the 10th call failed after 10
    timeouts)."""
    timeout_ms, calls = 200, 20
    c = await open_client(kind, own.url, cluster=own.cluster is not None, timeout_ms=timeout_ms)
    echo = script("return ARGV[1]")
    try:
        assert await c.evalsha(echo, [KEY], ["warm"]) == b"warm"
        pid = own.pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            # half of one timeout after another (4 s), ten timeouts of margin for a loaded
            # machine: the failure it catches is the serial one
            async with asyncio.timeout(calls * timeout_ms / 1000 / 2):
                outcomes = await asyncio.gather(
                    *(outcome(c.evalsha(echo, [KEY], [str(i)])) for i in range(calls))
                )
        finally:
            os.kill(pid, signal.SIGCONT)
        assert outcomes == ["unavailable"] * calls
        own.wait_ok()
        assert (await until_answered(lambda: c.evalsha(echo, [KEY], ["back"])))[-1] == b"back"
    finally:
        await c.close()


async def test_a_reply_later_than_the_timeout_is_unavailable_and_never_misread(
    kind: str, own: Own
) -> None:
    """A frozen server (SIGSTOP) answers after timeout_ms: the call is "unavailable" within
    the timeout, and its late reply is never taken for another call's (the client drops
    that connection)."""
    c = await open_client(kind, own.url, cluster=own.cluster is not None, timeout_ms=200)
    echo = script("redis.call('INCR', KEYS[1]) return ARGV[1]")
    try:
        assert await c.evalsha(echo, [KEY], ["first"]) == b"first"  # cached
        pid = own.pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(5):  # a hang is a failure, not a slow test
                assert await outcome(c.evalsha(echo, [KEY], ["late"])) == "unavailable"
        finally:
            os.kill(pid, signal.SIGCONT)
        own.wait_ok()
        for i in range(2):
            outcomes = await until_answered(lambda i=i: c.evalsha(echo, [KEY], [f"next{i}"]))
            assert set(outcomes[:-1]) <= {"unavailable"} and outcomes[-1] == f"next{i}".encode()
        # the late call ran once the server thawed, or was dropped with its connection (a
        # client cannot know which: that is why "unavailable" is a 503)
        assert int(await c.execute("GET", KEY)) >= 3
    finally:
        await c.close()
