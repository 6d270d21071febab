"""Make a Valkey of the test's own (the `own_valkey` fixture) refuse: busy with a script
(BUSY) or demoted to a replica (READONLY)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from rotator.embedded import free_port

SPIN = (
    "local s = redis.call('TIME') local t0 = s[1] * 1e6 + s[2] "
    "while true do local n = redis.call('TIME') "
    "if n[1] * 1e6 + n[2] - t0 > tonumber(ARGV[1]) * 1e6 then return 1 end end"
)


@asynccontextmanager
async def busy(server, seconds: float) -> AsyncIterator[asyncio.Task[Any]]:
    """The server answers BUSY to everything while a script spins for `seconds`."""
    admin = aioredis.Redis.from_url(server.url)
    await admin.config_set("busy-reply-threshold", 100)  # BUSY after 0.1 s, not 5 s
    spinner = aioredis.Redis.from_url(server.url, socket_timeout=seconds + 30)
    script = asyncio.create_task(spinner.eval(SPIN, 0, seconds))
    try:
        await asyncio.sleep(0.4)  # past the threshold
        yield script
    finally:
        await script
        await spinner.aclose()
        await admin.aclose()


@asynccontextmanager
async def demoted(server, seconds: float = 0) -> AsyncIterator[None]:
    """The server answers READONLY to every write: a replica of a primary that does not
    answer, its data kept (what a failover leaves at the old primary's address)."""
    admin = aioredis.Redis.from_url(server.url)
    await admin.execute_command("REPLICAOF", "127.0.0.1", free_port())
    try:
        yield
    finally:
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        await admin.aclose()
