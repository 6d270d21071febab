"""X-Request-ID on every answer, and the request's scope (id, client address) for the logs
and the audit log: a pure ASGI middleware, the outermost layer of every route but the
delivery paths (rotator/api/app.py puts it on the routers of everything else).

The id is the trusted proxy's own (X-Request-ID from a peer in TRUSTED_PROXIES, checked
like the delivery path checks it), else a new one: this process's random prefix and a
counter (rotator/request_ids.py), unique across processes and restarts without a uuid4.
The delivery paths (/v1/next and the hosted guide's next.php) set their own header on their
own hot path and never pass through here: even a pass-through layer cost them about 2 µs a
request on the shared test machine (a micro-benchmark of this middleware around a no-op).
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from rotator.request_ids import PROXY_ID
from rotator.request_scope import RequestScope, close_scope, new_request_id, open_scope

HEADER = b"x-request-id"


def _header(scope: Scope, name: bytes) -> str | None:
    """Every line of the header `name`, joined by commas in order, as the delivery route
    reads them (api/delivery_request.py): a proxy may add a line of its own instead of
    extending the client's, and the first line is then the client's to write."""
    lines = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    return ",".join(lines) if lines else None


class RequestIdMiddleware:
    """Opens the request's scope and stamps its id on the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state.rotator
        client = scope.get("client")
        peer = client[0] if client else ""
        resolver = state.client_ip
        forwarded = request_id = None
        if resolver.trusted and resolver.trusts(peer):
            forwarded = _header(scope, b"x-forwarded-for")
            request_id = _header(scope, HEADER)
        if not request_id or not PROXY_ID.fullmatch(request_id):
            request_id = new_request_id()
        header = (HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = open_scope(
            RequestScope(request_id=request_id, address=resolver.resolve(peer, forwarded))
        )
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            close_scope(token)
