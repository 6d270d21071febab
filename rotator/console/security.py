"""The console's browser-facing protections: CSRF secret, response headers, cookie flags.

The JSON API is Bearer-authenticated, so only the console (cookie-authenticated) needs
CSRF protection; it is applied as middleware of the console's router only, which keeps
the delivery hot path free of it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.exceptions import PermissionDeniedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from rotator.crypto import KeyRing
from rotator.domain.clientip import ClientIpResolver

CONSOLE_PATH = "/app"
CSRF_COOKIE = "kr_csrf"
CSRF_HEADER = "x-csrftoken"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    # pages show tokens and secrets once: never kept by a browser or a proxy
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def csrf_secret(keyring: KeyRing) -> str:
    """HKDF-SHA256 of the sealing master key: every API process behind a load balancer
    derives the same secret, and none is stored anywhere."""
    _, raw = keyring.keys[0]
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyrotator csrf")
    return derived.derive(raw).hex()


def csrf_config(keyring: KeyRing) -> CSRFConfig:
    # The CSRF cookie is HttpOnly: pages carry the token themselves (a hidden field, and
    # hx-headers for htmx). It is not marked Secure, because one config serves http and
    # https; it holds no credential, only the double-submit value.
    return CSRFConfig(
        secret=csrf_secret(keyring),
        cookie_name=CSRF_COOKIE,
        cookie_path=CONSOLE_PATH,
        header_name=CSRF_HEADER,
        cookie_httponly=True,
        cookie_samesite="strict",
    )


class SameOriginCSRFMiddleware(CSRFMiddleware):
    """Litestar's double-submit check, after refusing a write another site sent.

    The double-submit pair is not bound to the session, so a page that can set cookies for
    this host (a sibling host of the same site setting one for the parent domain, or a
    network attacker writing a non-Secure cookie over http) can plant a pair of its own and
    post with it: SameSite=Strict does not stop a same-site post. The browser says where a
    request came from (`Sec-Fetch-Site`; `Origin` in older ones): a write from another
    site, or from another origin of this one, is refused before the token is looked at. A
    client sending neither header (curl, the tests) is left to the token check."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unsafe = scope["type"] == "http" and scope["method"] not in self.config.safe_methods
        if unsafe and cross_origin(Headers.from_scope(scope)):
            raise PermissionDeniedException("cross-site request refused")
        await super().__call__(scope, receive, send)


def cross_origin(headers: Headers) -> bool:
    """Whether the browser says the request came from another origin."""
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    # host names only: a proxy may pass on the Host without the public port (nginx's $host)
    try:
        sent = urlsplit(origin).hostname if origin != "null" else None
        ours = urlsplit("//" + headers.get("host", "")).hostname
    except ValueError:  # `http://[::1`: no origin of ours
        return True
    return sent is None or sent != ours


def came_over_https(connection: ASGIConnection, resolver: ClientIpResolver) -> bool:
    """https at our socket, or `X-Forwarded-Proto: https` from a trusted proxy."""
    if connection.scope.get("scheme") == "https":
        return True
    client = connection.scope.get("client")
    peer = client[0] if client else ""
    forwarded = connection.headers.get("x-forwarded-proto", "")
    return bool(resolver.trusted) and resolver.trusts(peer) and forwarded.lower() == "https"


def add_page_headers(headers: MutableScopeHeaders) -> None:
    for name, value in PAGE_HEADERS.items():
        if name not in headers:
            headers[name] = value


def page_headers_middleware(app: ASGIApp) -> ASGIApp:
    """Every console response gets PAGE_HEADERS (error pages build them in themselves)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_page_headers(MutableScopeHeaders.from_message(message))
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware
