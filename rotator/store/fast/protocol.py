"""One pipelined connection: commands are written in small batches, replies resolve in order.

Redis answers the commands of one connection in order, so a FIFO of futures is all
the bookkeeping a reply needs. Concurrent requests queue their packed commands and
the first one of a tick schedules a flush (one transport.write) at the end of the
tick; a batch that reaches FLUSH_EVERY commands is written at once. Deadlines are
per connection, not per call (no wait_for, no timer per call): a watchdog looks at
the send time of the oldest unanswered batch, and once it is older than the timeout
the connection is dead, because a late reply could no longer be matched to anything
after the pending calls are failed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis

from rotator.domain.errors import StoreUnavailable
from rotator.store.fast.endpoint import Endpoint
from rotator.tuning import FLUSH_EVERY

log = logging.getLogger("rotator.store.fast")


class ReplyError(Exception):
    """Redis answered with an error (other than NOSCRIPT, which is handled)."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


pack_command = hiredis.pack_command

FLUSH_SIZES = [0] * (FLUSH_EVERY + 1)
"""Writes by their number of commands (index), for the write batch size metric
(rotator/metrics/fold.py reads it): one list increment per write, ≈ 20 ns."""


class PipelinedConnection(asyncio.Protocol):
    """An asyncio Protocol speaking RESP2 through hiredis; see the module docstring."""

    __slots__ = (
        "_batches",
        "_closed",
        "_create_future",
        "_flush_scheduled",
        "_loop",
        "_lost",
        "_on_close",
        "_out",
        "_pending",
        "_reader",
        "_sent",
        "_timeout_s",
        "_transport",
        "_watch_every_s",
        "_watchdog",
        "address",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
        address: str,
        on_close: Callable[[PipelinedConnection], None] | None = None,
    ) -> None:
        self._loop = loop
        self._create_future = loop.create_future
        self._timeout_s = timeout_s
        self._watch_every_s = max(timeout_s / 4, 0.005)
        self.address = address
        self._on_close = on_close
        self._reader = hiredis.Reader(replyError=ReplyError)
        self._transport: asyncio.Transport | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        # (send time, total requests written once this batch was): the watchdog's clock
        self._batches: deque[tuple[float, int]] = deque()
        self._sent = 0
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False
        self._lost: asyncio.Future[None] = loop.create_future()

    # --- the hot path ---------------------------------------------------------------------
    def request(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; the future gets its reply (a ReplyError instance for
        an error reply) or StoreUnavailable when the connection dies first."""
        fut = self._create_future()
        if self._closed:
            fut.set_exception(StoreUnavailable())
            return fut
        self._pending.append(fut)
        out = self._out
        out.append(packed)
        if len(out) >= FLUSH_EVERY:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if self._closed or not out:
            return
        self._transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
        FLUSH_SIZES[len(out)] += 1  # request() writes at FLUSH_EVERY: never more
        self._sent += len(out)
        self._out = []
        self._batches.append((self._loop.time(), self._sent))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._watch_every_s, self._watch)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError:
                self._fail("protocol error")
                return
            if reply is False:  # RESP2 has no booleans: False is hiredis's "need more data"
                return
            try:
                fut = pending.popleft()
            except IndexError:
                self._fail("a reply nobody asked for")
                return
            if not fut.done():  # the caller may have been cancelled; the reply is dropped
                fut.set_result(reply)

    # --- deadlines ------------------------------------------------------------------------
    def _watch(self) -> None:
        self._watchdog = None
        if self._closed:
            return
        answered = self._sent + len(self._out) - len(self._pending)
        batches = self._batches
        while batches and batches[0][1] <= answered:
            batches.popleft()
        if not batches:
            return  # idle; the next flush re-arms the watchdog
        if self._loop.time() - batches[0][0] > self._timeout_s:
            self._fail(f"no reply within {self._timeout_s * 1000:.0f} ms")
            return
        self._watchdog = self._loop.call_later(self._watch_every_s, self._watch)

    # --- lifecycle ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # an idle connection silently dropped by a middlebox is found by the kernel,
            # not by the first request after it timing out
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("connection lost" if exc is None else f"connection lost: {exc}")
        if not self._lost.done():
            self._lost.set_result(None)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost fails what is pending

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close now: pending calls fail with StoreUnavailable."""
        self._fail(None)

    async def wait_closed(self) -> None:
        if self._transport is not None:
            await self._lost

    def _fail(self, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        if reason is not None:
            log.warning("redis %s: %s", self.address, reason)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            # abort, not close: unsent commands must not reach a server whose replies we drop
            self._transport.abort()
        pending, self._pending = self._pending, deque()
        self._out = []
        for fut in pending:
            if not fut.done():
                fut.set_exception(StoreUnavailable())
        if self._on_close is not None:
            self._on_close(self)


async def open_connection(
    endpoint: Endpoint,
    timeout_s: float,
    on_close: Callable[[PipelinedConnection], None] | None = None,
) -> PipelinedConnection:
    """Connect, AUTH, SELECT and PING within timeout_s. Raises OSError/TimeoutError when
    the server cannot be reached or is not ready, ReplyError when it refuses AUTH/SELECT."""
    loop = asyncio.get_running_loop()
    conn = PipelinedConnection(loop, timeout_s, endpoint.address, on_close)
    try:
        async with asyncio.timeout(timeout_s):
            if endpoint.unix_path is not None:
                await loop.create_unix_connection(lambda: conn, endpoint.unix_path)
            else:
                await loop.create_connection(
                    lambda: conn,
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.ssl,
                    server_hostname=endpoint.host if endpoint.ssl else None,
                )
            handshake = []
            if endpoint.password is not None:
                auth = (
                    ("AUTH", endpoint.username, endpoint.password)
                    if endpoint.username
                    else ("AUTH", endpoint.password)
                )
                handshake.append(conn.request(pack_command(auth)))
            if endpoint.db:
                handshake.append(conn.request(pack_command(("SELECT", endpoint.db))))
            # a server that accepts but does not answer (frozen) or is still loading its
            # data fails the connect, so calls fail fast until it is ready
            ready = conn.request(pack_command(("PING",)))
            for fut in handshake:
                reply = await fut
                if isinstance(reply, ReplyError):
                    raise reply  # bad credentials or db: a configuration error
            reply = await ready
            if isinstance(reply, ReplyError):
                raise ConnectionError(f"server not ready: {reply.message}")
    except BaseException:
        conn._on_close = None  # never became anyone's connection
        conn.close()
        raise
    return conn
