"""POSTing webhooks, with the SSRF check on the address actually connected to.

httpcore asks its network backend to open a TCP connection to the URL's host. Our
backend resolves the host itself, refuses when any answer is not a public address
(rotator.netguard), and connects to the checked IP literal; httpcore still sends the
original Host header and uses the hostname for TLS SNI and certificate checks. So a
name that resolved to a public address when the tenant set it, and to 127.0.0.1 now
(DNS rebinding), is refused before a byte is sent. Redirects are never followed
(httpcore does not follow them; a 3xx is a failed attempt).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote

import httpcore
import httpx

from rotator import netguard
from rotator.tuning import WEBHOOK_MAX_RESPONSE_BYTES

Resolver = Callable[..., Awaitable[list[str]]]


class DeliveryFailed(Exception):
    """No HTTP response: the message says why (no secret, no URL credentials in it)."""


class BlockedAddress(httpcore.ConnectError):
    """The host resolves to a non-public address and private targets are not allowed."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend: resolve, check every address, connect to a checked IP."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = netguard.resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            resolve_timeout_s = timeout or netguard.RESOLVE_TIMEOUT_S
            addresses = await self.resolver(host, port, timeout_s=resolve_timeout_s)
        except (OSError, UnicodeError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"host {host!r} does not resolve") from exc
        if not addresses:
            raise httpcore.ConnectError(f"host {host!r} does not resolve")
        # the address is not named: the message goes to the tenant's delivery log, and what
        # names resolve to inside the operator's network is not the tenant's to learn
        if not self.allow_private and not all(map(netguard.is_public_address, addresses)):
            raise BlockedAddress(f"refused: host {host!r} resolves to a non-public address")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc  # try the host's next address, as a browser would
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class WebhookClient:
    """One connection pool per worker process; connections to a receiver are kept alive."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_s: float,
        max_connections: int = 100,
        resolver: Resolver = netguard.resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            keepalive_expiry=30.0,
            retries=0,  # a retry is a new attempt, decided (and logged) by the delivery job
            network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """POST `body`; returns the response status. Raises DeliveryFailed when none came."""
        try:
            netguard.split_webhook_url(url)
            parsed = httpx.URL(url)
        except (netguard.InvalidField, httpx.InvalidURL) as exc:
            raise DeliveryFailed(f"invalid webhook URL: {exc}") from None
        request_headers = [("host", parsed.netloc.decode("ascii")), *headers.items()]
        if parsed.userinfo:
            # credentials in the URL mean HTTP basic auth, as in every HTTP client
            basic = base64.b64encode(unquote(parsed.userinfo.decode()).encode()).decode()
            request_headers.append(("authorization", "Basic " + basic))
        request_headers.append(("content-length", str(len(body))))
        request_headers.append(("user-agent", "keyrotator-webhooks"))
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        t = self.timeout_s
        extensions = {"timeout": {"connect": t, "read": t, "write": t, "pool": t}}
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + t
        try:
            async with asyncio.timeout_at(ends_at) as deadline:
                async with self._pool.stream(
                    "POST", target, headers=request_headers, content=body, extensions=extensions
                ) as response:
                    # the status line is the receiver's answer; the body is read only so the
                    # connection can be reused, and one that stalls must not turn a 2xx into
                    # a failed attempt (and the event into a duplicate). It is read within
                    # what is left of the same `t`: the whole exchange must end inside the
                    # job's arq timeout (t + a margin), or arq ends the job for good and the
                    # event is lost without a logged outcome
                    deadline.reschedule(None)
                    await _drain(response, max(0.0, ends_at - loop.time()))
                    return response.status
        except TimeoutError:
            raise DeliveryFailed(f"timeout after {t:g}s") from None
        except BlockedAddress as exc:
            raise DeliveryFailed(str(exc)) from None
        except httpcore.TimeoutException as exc:
            raise DeliveryFailed(f"timeout ({type(exc).__name__})") from None
        except httpcore.ConnectError as exc:
            raise DeliveryFailed(f"connect error: {exc}") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _drain(response: httpcore.Response, timeout_s: float) -> None:
    """Read and drop a response body of at most WEBHOOK_MAX_RESPONSE_BYTES within
    `timeout_s`; a longer, slower or broken one only costs the connection (closed, not
    reused, when the stream ends unread)."""
    seen = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in response.aiter_stream():
                seen += len(chunk)
                if seen > WEBHOOK_MAX_RESPONSE_BYTES:
                    return
    except (TimeoutError, httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError):
        return
