"""A store URL, read once: the one parser behind every Redis client we build.

FastRedis (the hot path), redis-py (management, CLI, cluster) and arq (the job
queue) are each configured explicitly from the `StoreAddress` this module
returns, so one URL means one thing to all of them: the same host, credentials,
database and TLS checks. Before, each client read the URL its own way (FastRedis
checked hostnames and redis-py did not; FastRedis dropped unknown parameters;
arq ignored the TLS ones).

    redis://[user:password@]host[:port][/db]
    rediss://[user:password@]host[:port][/db][?ssl_ca_certs=PATH&...]
    unix://[user:password@]/path/to/socket[?db=N]

TLS (rediss://) verifies the server's certificate chain AND that it names the
host the client dials, unless the URL opts out explicitly; the parameters carry
redis-py's names (see QUERY_PARAMETERS). Anything else in the query is refused,
so a typo (`ssl_ca_cert=`) cannot silently weaken the connection.

No message raised here holds the password, nor any text that might be part of
one: a password with an unescaped `?`, `#` or `/` spills into the query, the
fragment or the path, so those are never echoed.
"""

from __future__ import annotations

import difflib
import re
import ssl
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import msgspec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379

QUERY_PARAMETERS = {
    "db": "database number (redis://host/N says the same; give it once)",
    "ssl_ca_certs": "PEM file of the CA(s) to trust, in addition to the system's",
    "ssl_cert_reqs": "required (default) | none: none skips certificate and hostname checks",
    "ssl_check_hostname": "true (default) | false: false still checks the certificate chain",
    "ssl_certfile": "PEM client certificate (servers with tls-auth-clients); needs ssl_keyfile",
    "ssl_keyfile": "PEM private key of ssl_certfile",
}
"""Every query parameter a store URL may carry, and what it means (docs/tls.md)."""

_TLS_PARAMETERS = frozenset(name for name in QUERY_PARAMETERS if name.startswith("ssl_"))
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}", re.IGNORECASE)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class AddressError(ValueError):
    """A store URL cannot be used as written; the message says why, never the password."""


class TlsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a rediss:// connection checks the server (and, optionally, presents itself)."""

    ca_file: str | None = None
    """ssl_ca_certs: trusted in addition to the system's CAs (as redis-py does)."""
    verify_certificate: bool = True
    """ssl_cert_reqs=required|none."""
    check_hostname: bool = True
    """ssl_check_hostname: the certificate must name the host or IP the client dials."""
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """The context FastRedis uses, built in the order and with the defaults redis-py
        uses for the same keyword arguments (`redis_kwargs`), so both trust alike.
        Raises OSError or ssl.SSLError for a file that is missing or not PEM."""
        context = ssl.create_default_context()  # system CAs, TLS >= 1.2
        context.check_hostname = self.check_hostname
        context.verify_mode = ssl.CERT_REQUIRED if self.verify_certificate else ssl.CERT_NONE
        if self.cert_file is not None:
            context.load_cert_chain(certfile=self.cert_file, keyfile=self.key_file)
        if self.ca_file is not None:
            context.load_verify_locations(cafile=self.ca_file)
        return context

    def redis_kwargs(self) -> dict[str, Any]:
        """redis-py's (and arq's) names for the same options, every one given explicitly:
        redis-py 5 would otherwise default to no hostname check."""
        return {
            "ssl": True,
            "ssl_ca_certs": self.ca_file,
            "ssl_cert_reqs": "required" if self.verify_certificate else "none",
            "ssl_check_hostname": self.check_hostname,
            "ssl_certfile": self.cert_file,
            "ssl_keyfile": self.key_file,
        }


class StoreAddress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a store is and how to talk to it. Build with `StoreAddress.parse(url)`."""

    scheme: Literal["redis", "rediss", "unix"]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: TlsOptions | None = None

    @classmethod
    def parse(cls, url: str) -> StoreAddress:
        """Read a redis://, rediss:// or unix:// URL; AddressError says what is wrong."""
        return _parse(url)

    def at(self, host: str, port: int) -> StoreAddress:
        """The same credentials and TLS options on another node (a cluster peer, reached
        at the address the cluster announces: its certificate must name that address)."""
        return msgspec.structs.replace(self, host=host, port=port)

    @property
    def location(self) -> str:
        """host:port or the socket path: for logs and messages, never credentials."""
        if self.unix_path is not None:
            return self.unix_path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """The URL fit for a message: the password masked, the query left out."""
        user = ""
        if self.password is not None:
            user = f"{self.username or ''}:***@"
        if self.unix_path is not None:
            return f"unix://{user}{self.unix_path}" + (f"?db={self.db}" if self.db else "")
        return f"{self.scheme}://{user}{self.location}/{self.db}"

    def redis_kwargs(self, *, cluster: bool = False) -> dict[str, Any]:
        """Keyword arguments of redis.Redis / redis.asyncio.Redis (cluster=False) or of
        redis.asyncio.cluster.RedisCluster (cluster=True: no database, no socket path)."""
        kwargs: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.unix_path is not None:
            if cluster:
                raise AddressError("a cluster node is addressed as redis:// or rediss://")
            return {**kwargs, "unix_socket_path": self.unix_path, "db": self.db}
        kwargs.update(host=self.host, port=self.port)
        if cluster:
            if self.db:
                raise AddressError("a cluster has only database 0")
        else:
            kwargs["db"] = self.db
        if self.tls is not None:
            kwargs.update(self.tls.redis_kwargs())
        return kwargs

    def __repr__(self) -> str:
        # a Struct's repr shows every field: keep the password out of logs and tracebacks
        return f"StoreAddress({self.display!r}, tls={self.tls!r})"


def _parse(url: str) -> StoreAddress:
    if not isinstance(url, str) or not url.strip():
        raise AddressError("empty URL")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        # urlsplit's own message may quote the netloc, password included
        raise AddressError(
            "bad host or port (percent-encode special characters in the password)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise AddressError("must start with redis://, rediss:// or unix://")
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        # most likely a password's '/', '?' or '#' cut the URL short: echo none of it
        raise AddressError(
            "an '@' after the host: percent-encode a password's '/', '?' and '#' "
            "(%2F, %3F, %23), and an '@' in a parameter (%40)"
        )
    if parts.fragment or url.rstrip().endswith("#"):
        raise AddressError("a store URL has no #fragment")
    query = _query(parts.query)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        raise AddressError("a user name needs a password: scheme://user:password@host")
    tls_given = sorted(_TLS_PARAMETERS & query.keys())
    if scheme != "rediss" and tls_given:
        raise AddressError(
            f"{', '.join(tls_given)} need{'s' if len(tls_given) == 1 else ''} a rediss:// URL"
        )
    if scheme == "unix":
        if parts.hostname or port is not None:
            raise AddressError("a unix:// URL has no host: unix:///path/to/socket")
        if not parts.path or parts.path == "/":
            raise AddressError("a unix:// URL needs a socket path: unix:///path/to/socket")
        return StoreAddress(
            scheme="unix",
            unix_path=unquote(parts.path),
            username=username,
            password=password,
            db=_db(query.get("db", "0")),
        )
    path_db = parts.path.strip("/")
    if path_db and "db" in query:
        raise AddressError("the database is given twice (path and ?db=): give it once")
    if port == 0:
        raise AddressError("port 0 is not a server port")
    return StoreAddress(
        scheme=scheme,  # type: ignore[arg-type]  -- checked above
        host=parts.hostname or DEFAULT_HOST,
        port=port or DEFAULT_PORT,
        username=username,
        password=password,
        db=_db(path_db or query.get("db", "0")),
        tls=_tls(query) if scheme == "rediss" else None,
    )


def _query(text: str) -> dict[str, str]:
    """name -> value; unknown, repeated, empty or malformed parameters are refused."""
    values: dict[str, str] = {}
    unknown: list[str] = []
    for item in text.split("&") if text else ():
        name, _, raw = item.partition("=")
        if not _NAME.fullmatch(name):
            raise AddressError(
                "malformed query: parameters are name=value, joined by &; "
                f"known: {', '.join(QUERY_PARAMETERS)}"
            )
        name = name.lower()
        if name not in QUERY_PARAMETERS:
            unknown.append(name)
            continue
        if name in values:
            raise AddressError(f"parameter {name} is given twice")
        value = unquote(raw).strip()
        if not value:
            raise AddressError(f"parameter {name} has no value")
        values[name] = value
    if unknown:
        hints = [
            f"{name} (did you mean {close[0]}?)" if close else name
            for name in unknown
            for close in [difflib.get_close_matches(name, QUERY_PARAMETERS, n=1)]
        ]
        raise AddressError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
            f"known: {', '.join(QUERY_PARAMETERS)}"
        )
    return values


def _db(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise AddressError("the database must be a number (redis://host:port/N)")
    return int(text)


def _flag(query: dict[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise AddressError(f"{name} must be true or false")


def _tls(query: dict[str, str]) -> TlsOptions:
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in ("required", "none"):
        raise AddressError("ssl_cert_reqs must be required or none")
    verify = reqs == "required"
    # no certificate check means no name to check either: none implies ssl_check_hostname=false
    check_hostname = _flag(query, "ssl_check_hostname", verify)
    if check_hostname and not verify:
        raise AddressError("ssl_check_hostname=true needs ssl_cert_reqs=required")
    cert_file, key_file = query.get("ssl_certfile"), query.get("ssl_keyfile")
    if (cert_file is None) != (key_file is None):
        raise AddressError("ssl_certfile and ssl_keyfile go together: give both or neither")
    return TlsOptions(
        ca_file=query.get("ssl_ca_certs"),
        verify_certificate=verify,
        check_hostname=check_hostname,
        cert_file=cert_file,
        key_file=key_file,
    )
