"""Calling a Lua script with redis-py (management, workers): EVALSHA, resending the source once.

The hot path has its own client (fastredis); this is for everything else, on a plain
or a cluster client alike (every script's keys share one hash slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from rotator.store.connection import Redis
from rotator.store.scripts import Script


async def run(client: Redis, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run `script`; on NOSCRIPT (server restarted, cache flushed) send its source once."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[misc]
    except NoScriptError:
        return await client.eval(script.source, len(keys), *keys, *args)  # type: ignore[misc]
