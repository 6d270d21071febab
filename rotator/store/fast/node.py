"""One server and its current pipelined connection, reconnected on demand.

After the connection is lost the next call reconnects. One attempt runs at a time,
shared by every caller that needs it; after a failed attempt calls fail at once
with StoreUnavailable for RECONNECT_AFTER_S instead of each waiting a connect timeout,
so a down Redis costs requests microseconds, and the service recovers by itself.
Failed attempts (five a second while requests come in) are logged folded: the first at
once, then one line a minute with the count, and the recovery (rotator/folded_log.py).
"""

from __future__ import annotations

import asyncio
import logging

from rotator.domain.errors import StoreUnavailable
from rotator.folded_log import FoldedWarning
from rotator.store.fast.endpoint import Endpoint
from rotator.store.fast.protocol import PipelinedConnection, ReplyError, open_connection
from rotator.tuning import RECONNECT_AFTER_S

log = logging.getLogger("rotator.store.fast")


class Node:
    """Connection manager for one endpoint. `conn` is the live connection or None."""

    def __init__(self, endpoint: Endpoint, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.conn: PipelinedConnection | None = None
        self.connect_attempts = 0
        """Observability (and tests): how many connects were tried."""
        self._connecting: asyncio.Task[PipelinedConnection] | None = None
        self._retry_at = 0.0
        self._closed = False
        self._failures = FoldedWarning(
            log, f"redis {endpoint.address}", action=f"reconnecting every {RECONNECT_AFTER_S}s"
        )

    async def start(self) -> None:
        """The first connect: a refused handshake (bad password, bad db) is a ReplyError
        so a misconfiguration is reported as such; unreachable is StoreUnavailable."""
        try:
            await self.reconnect()
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, ReplyError):
                raise exc.__cause__ from None
            raise

    async def reconnect(self) -> PipelinedConnection:
        """The live connection, connecting if there is none (see the module docstring)."""
        conn = self.conn
        if conn is not None:
            return conn
        if self._closed:
            raise StoreUnavailable()
        task = self._connecting
        if task is None:
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                raise StoreUnavailable()
            self.connect_attempts += 1
            task = self._connecting = loop.create_task(
                open_connection(self.endpoint, self.timeout_s, self._lost)
            )
            task.add_done_callback(self._connected)
        try:
            # shielded: a cancelled caller must not cancel the attempt the others share
            return await asyncio.shield(task)
        except (OSError, TimeoutError, ReplyError, StoreUnavailable) as exc:
            raise StoreUnavailable() from exc
        except asyncio.CancelledError:
            if task.cancelled():  # the attempt was stopped by close(), not this caller
                raise StoreUnavailable() from None
            raise

    def _connected(self, task: asyncio.Task[PipelinedConnection]) -> None:
        self._connecting = None
        retry_at = asyncio.get_running_loop().time() + RECONNECT_AFTER_S
        if task.cancelled():
            self._retry_at = retry_at
            return
        exc = task.exception()  # retrieved here, always, even if every caller went away
        if exc is not None:
            self._retry_at = retry_at
            self._failures.failed(exc)
            return
        self._failures.recovered()
        conn = task.result()
        if self._closed:
            conn.close()
        elif not conn.closed:  # it may already have been lost between handshake and here
            self.conn = conn

    def _lost(self, conn: PipelinedConnection) -> None:
        if self.conn is conn:
            self.conn = None

    def close_now(self) -> PipelinedConnection | None:
        """Stop for good: pending and later calls fail with StoreUnavailable."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        return conn

    async def close(self) -> None:
        conn = self.close_now()
        if conn is not None:
            await conn.wait_closed()
