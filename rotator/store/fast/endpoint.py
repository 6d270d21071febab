"""Where and how to reach one server, parsed from a redis-py style URL.

redis://[[user]:password@]host[:port][/db]
rediss://...                      TLS (ssl.create_default_context; ?ssl_ca_certs=PATH,
                                  ?ssl_cert_reqs=none|required as in redis-py)
unix://[[user]:password@]/path/to/socket[?db=N]
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    ssl: ssl.SSLContext | None = None

    def at(self, host: str, port: int) -> Endpoint:
        """The same credentials and TLS settings on another node (cluster peers)."""
        return dataclasses.replace(self, host=host, port=port, unix_path=None)

    @property
    def address(self) -> str:
        """For logs: never includes credentials."""
        return self.unix_path or f"{self.host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Parse a redis://, rediss:// or unix:// URL; ValueError names what is wrong."""
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    db_text = query.get("db")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// URL without a socket path")
        return Endpoint(
            unix_path=unquote(parts.path),
            username=username,
            password=password,
            db=_db(db_text or "0"),
        )
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} (redis, rediss or unix)")
    path_db = parts.path.lstrip("/")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"bad port in Redis URL: {exc}") from None
    return Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=port,
        username=username,
        password=password,
        db=_db(path_db or db_text or "0"),
        ssl=_ssl_context(query) if parts.scheme == "rediss" else None,
    )


def _db(text: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ValueError(f"Redis database must be a number, not {text!r}") from None
    if db < 0:
        raise ValueError("Redis database must not be negative")
    return db


def _ssl_context(query: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs == "none":
        # explicit opt-out in the URL (self-signed dev servers); never the default
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif reqs != "required":
        raise ValueError("ssl_cert_reqs must be 'none' or 'required'")
    return context
