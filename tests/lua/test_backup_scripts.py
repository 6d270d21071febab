"""backup_read.lua and restore_tenant.lua through their wrappers: every Redis type a tenant may
hold comes back as it was, and a malformed restore writes nothing."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from rotator.store.backup import load, snapshot
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.records import backup_read, restore_tenant

pytestmark = pytest.mark.backends("single", "cluster")

TAG = "{t:a1}"


async def read(redis, names: list[str]) -> list:
    return await run(Plain(redis), backup_read(names))


async def test_every_type_read_then_written_comes_back(redis):
    await redis.set(f"{TAG}:s", b"\x00\xffbinary")
    await redis.hset(f"{TAG}:h", mapping={"a": "1", "b": b"\x02sealed"})
    await redis.pexpire(f"{TAG}:h", 600_000)
    await redis.sadd(f"{TAG}:set", "x", "y")
    await redis.zadd(f"{TAG}:z", {"m": 1.5, "n": 1772366400000})
    await redis.rpush(f"{TAG}:l", "first", "second")
    await redis.xgroup_create(f"{TAG}:empty", "webhooks", id="0", mkstream=True)
    names = [f"{TAG}:{n}" for n in ("s", "h", "set", "z", "l", "empty", "absent")]
    reply = await read(redis, names)
    now_ms = int(reply[0])
    records = [snapshot.key_record("a1", entry, now_ms) for entry in reply[1:]]
    assert [r.name for r in records] == ["s", "h", "set", "z", "l", "empty"]  # absent: skipped
    before = {k: await redis.dump(k) for k in names[:-1]}
    await redis.delete(*names)

    record = snapshot.TenantRecord(id="a1", read_at="", read_at_ms=now_ms, keys=records)
    keys_, args, expired = load.script_call(record, set(), now_ms)
    assert expired == 0
    assert await run(Plain(redis), restore_tenant(keys_, args)) == 6

    for name, dumped in before.items():
        assert await redis.dump(name) == dumped, name  # same encoding of the same value
    assert 590_000 < await redis.pttl(f"{TAG}:h") <= 600_000
    assert await redis.pttl(f"{TAG}:s") == -1
    groups = await redis.xinfo_groups(f"{TAG}:empty")
    assert [g["name"] for g in groups] == [b"webhooks"]


async def test_a_malformed_call_writes_nothing(redis):
    await redis.set(f"{TAG}:kept", "as it was")
    good = [1, "string", "", 1, "new"]
    for bad in (
        [*good, 1, "nosuchtype", "", 0],  # an unknown type after a good key
        [*good, 2, "string", "", 1, "v"],  # an index past KEYS
        [*good, 1, "hash", "", 4, "f", "v"],  # fewer items than it says
    ):
        with pytest.raises(ResponseError, match="malformed arguments"):
            await run(Plain(redis), restore_tenant([f"{TAG}:kept"], bad))
        assert await redis.get(f"{TAG}:kept") == b"as it was"
