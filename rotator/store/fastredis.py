"""The hot path's Redis client. (Interim: redis-py underneath; replaced by a pipelined client.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from rotator.domain.errors import StoreUnavailable
from rotator.store.connection import UNAVAILABLE
from rotator.store.scripts import Script


class ReplyError(Exception):
    """Redis answered with an error (other than NOSCRIPT, which is handled)."""


class FastRedis:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    @classmethod
    async def connect(cls, url: str, *, timeout_ms: int, cluster: bool = False) -> FastRedis:
        timeout_s = timeout_ms / 1000
        return cls(aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s))

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            try:
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                return await self._client.eval(script.source, len(keys), *keys, *args)
        except UNAVAILABLE as exc:
            raise StoreUnavailable() from exc
        except ResponseError as exc:
            raise ReplyError(str(exc)) from exc

    async def execute(self, *args: Any) -> Any:
        try:
            return await self._client.execute_command(*args)
        except UNAVAILABLE as exc:
            raise StoreUnavailable() from exc
        except ResponseError as exc:
            raise ReplyError(str(exc)) from exc

    async def close(self) -> None:
        await self._client.aclose()
