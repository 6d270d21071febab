"""`rotator webhook listen`: a local webhook receiver that prints each delivery and whether
its signature verifies.

    rotator webhook listen --port 9000 --secret whsec_...

Point a tenant at it (its webhook URL http://127.0.0.1:9000/hook; loopback needs
ROTATOR_WEBHOOK_ALLOW_PRIVATE=1). `--fail-first N` answers 503 to the first N attempts of
each event, to watch retries (same webhook-id, new timestamp).

Also the receiver the tests and the webhook bench run: `Receiver` records every request
it gets. A minimal HTTP/1.1 server on asyncio streams (keep-alive, Content-Length bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from workers import signing

MAX_BODY_BYTES = 1024 * 1024
"""A larger request is answered 413 (our events are a few hundred bytes)."""
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    peer: str


Responder = Callable[[Received], int | Awaitable[int]]
"""Decides the status of each request (may await, e.g. to hang like a stuck receiver)."""


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    respond: Responder = lambda _: 200
    on_request: Callable[[Received, int], None] | None = None
    ssl_context: ssl.SSLContext | None = None
    """Serve HTTPS with this context (tests of TLS delivery)."""
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # connections kept alive by the client are closed by the server's close; don't wait
            self._server = None

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """Wait until `count` requests have arrived (a bound, not a timed assertion)."""
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if peer else "?"
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _version = [*request_line.split(" "), "", ""][:3]
                headers = {}
                for line in lines:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                if "content-length" not in headers:
                    await self._reply(writer, 411, close=True)
                    return
                length = int(headers["content-length"])
                if length > MAX_BODY_BYTES:
                    await self._reply(writer, 413, close=True)
                    return
                body = await reader.readexactly(length)
                request = Received(method, path, headers, body, peer_text)
                self.received.append(request)
                self.arrived.set()
                status = self.respond(request)
                if not isinstance(status, int):
                    status = await status
                if self.on_request is not None:
                    self.on_request(request, status)
                await self._reply(writer, status, close=headers.get("connection") == "close")
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, *, close: bool = False) -> None:
        reason = _REASONS.get(status, "Status")
        extra = "connection: close\r\n" if close else ""
        writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n{extra}\r\n".encode())
        await writer.drain()


def _printer(secret: str | None) -> Callable[[Received, int], None]:
    def show(request: Received, status: int) -> None:
        if secret is None:
            verdict = "not checked (no --secret)"
        elif signing.verify(secret, request.headers, request.body, now_s=int(time.time())):
            verdict = "VALID"
        else:
            verdict = "INVALID"
        try:
            body = json.dumps(json.loads(request.body), indent=2, ensure_ascii=False)
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        method, path = _shown(request.method), _shown(request.path)
        print(
            f"--- {time.strftime('%H:%M:%S')} {method} {path} -> {status}\n"
            f"webhook-id: {_shown(request.headers.get('webhook-id'))}\n"
            f"webhook-timestamp: {_shown(request.headers.get('webhook-timestamp'))}\n"
            f"signature: {verdict}\n{_shown(body, keep=_LINES)}",
            flush=True,
        )

    return show


_LINES = frozenset("\n\t")


def _shown(text: str | None, keep: frozenset[str] = frozenset()) -> str:
    """`text` safe to print on a terminal: whoever can reach the port writes it, so control
    and format characters (escape sequences that clear the screen or rewrite a line, such
    as a forged `signature: VALID`, and bidi overrides) are shown escaped, as \\x1b."""
    if text is None:
        return "None"
    return "".join(
        c if c in keep or unicodedata.category(c) not in ("Cc", "Cf") else ascii(c)[1:-1]
        for c in text
    )


def _fail_first(n: int) -> Responder:
    seen: Counter[str] = Counter()

    def respond(request: Received) -> int:
        msg_id = request.headers.get("webhook-id", "")
        seen[msg_id] += 1
        return 503 if seen[msg_id] <= n else 200

    return respond


def _counter() -> Callable[[Received, int], None]:
    counted = Counter[str]()
    started = time.monotonic()

    def count(request: Received, status: int) -> None:
        counted[str(status)] += 1
        if sum(counted.values()) % 1000 == 0:
            rate = sum(counted.values()) / (time.monotonic() - started)
            print(f"{dict(counted)} ({rate:.0f}/s since start)", flush=True)

    return count


async def listen(
    host: str, port: int, secret: str | None, fail_first: int = 0, *, quiet: bool = False
) -> None:
    """Serve until cancelled (Ctrl-C), printing each delivery (or, `quiet`, a count every
    1000 of them, for load tests)."""
    show = _counter() if quiet else _printer(secret)
    receiver = Receiver(host=host, port=port, on_request=show)
    if fail_first:
        receiver.respond = _fail_first(fail_first)
    await receiver.start()
    print(f"listening on {receiver.url} (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.close()
