"""Settings: one object built from ROTATOR_* environment variables, validated once.

Nothing reads the environment at import time: `Settings.from_env()` is called by
the CLI (or a test) and the result is passed explicitly to whatever needs it.
Each field's `doc` metadata is what `rotator --help` prints.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rotator.crypto import KeyRing, KeyRingError
from rotator.store.address import AddressError, StoreAddress

PREFIX = "ROTATOR_"
MASTER_KEY_FILE = "master.key"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = PREFIX + name.upper()
        super().__init__(f"{self.name}: {problem}")


def _doc(text: str) -> Any:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the API, the workers and the CLI are configured with."""

    redis_url: str | None = field(
        default=None,
        metadata=_doc(
            "redis://[:password@]host:port/db of the data store (rediss:// = TLS, hostname "
            "checked; ?ssl_ca_certs=, ssl_cert_reqs=, ssl_check_hostname=, ssl_certfile=, "
            "ssl_keyfile=: docs/tls.md); unset = embedded Valkey"
        ),
    )
    redis_cluster: bool = field(
        default=False,
        metadata=_doc("1 = REDIS_URL names one node of a Redis/Valkey Cluster"),
    )
    queue_url: str | None = field(
        default=None,
        metadata=_doc(
            "Redis for the arq job queue, a URL as REDIS_URL; default: REDIS_URL "
            "(required with a cluster)"
        ),
    )
    data_dir: Path = field(
        default=Path("var"),
        metadata=_doc("embedded Valkey data (AOF) and the generated master key"),
    )
    master_key: KeyRing | None = field(
        default=None,
        metadata=_doc(
            "base64 of 32 bytes, or 'id:base64,id:base64,...' (first encrypts, all decrypt); "
            "default: DATA_DIR/master.key"
        ),
    )
    admin_token: str | None = field(
        default=None,
        metadata=_doc("operator token for /v1/admin/*; unset = operator API disabled"),
    )
    host: str = field(default="127.0.0.1", metadata=_doc("address the API listens on"))
    port: int = field(default=8080, metadata=_doc("port the API listens on"))
    workers: int = field(default=1, metadata=_doc("uvicorn worker processes for the API"))
    tls_cert_file: Path | None = field(
        default=None,
        metadata=_doc(
            "PEM certificate (chain) for https: `rotator run`/`serve` then serve https "
            "directly (single-machine installs); with docker compose, nginx's certificate "
            "(docs/https.md); `make dev-cert` makes a self-signed one for trying it"
        ),
    )
    tls_key_file: Path | None = field(
        default=None, metadata=_doc("the PEM private key of TLS_CERT_FILE (both or neither)")
    )
    trusted_proxies: tuple[Network | str, ...] = field(
        default=(),
        metadata=_doc(
            "comma-separated CIDRs or host names (e.g. the proxy's container name; resolved "
            "at start and every 30 s) whose X-Forwarded-For is honoured"
        ),
    )
    webhook_allow_private: bool = field(
        default=False,
        metadata=_doc("1 = allow webhook URLs on loopback/private addresses (tests, dev)"),
    )
    log_level: str = field(default="INFO", metadata=_doc("DEBUG, INFO, WARNING or ERROR"))
    log_summary_s: float = field(
        default=60.0,
        metadata=_doc(
            "seconds between the INFO lines that sum up deliveries (API) and jobs (worker); "
            "0 = none"
        ),
    )
    demo_rate_per_min: int = field(
        default=60, metadata=_doc("demo tenants: sustained requests per minute per client IP")
    )
    demo_burst: int = field(default=10, metadata=_doc("demo tenants: burst allowance per IP"))
    redis_timeout_ms: int = field(
        default=1000,
        metadata=_doc("a Redis call slower than this fails fast with 503 store unavailable"),
    )
    usage_retention_days: int = field(
        default=35, metadata=_doc("days of per-key usage history kept (counters expire)")
    )
    events_maxlen: int = field(
        default=10000, metadata=_doc("approximate cap of each tenant's event stream")
    )
    webhook_timeout_s: float = field(
        default=5.0, metadata=_doc("timeout of one webhook delivery attempt, seconds")
    )
    webhook_max_attempts: int = field(
        default=8, metadata=_doc("attempts per webhook event before it is recorded as failed")
    )
    session_idle_minutes: int = field(
        default=30, metadata=_doc("console: a session unused this long signs out (minutes)")
    )
    session_max_hours: int = field(
        default=12, metadata=_doc("console: a session ends this long after sign-in (hours)")
    )

    @property
    def scheme(self) -> str:
        """How the API is served: https when a certificate is configured."""
        return "https" if self.tls_cert_file is not None else "http"

    @property
    def embedded(self) -> bool:
        """True when the service starts its own Valkey (no REDIS_URL configured)."""
        return self.redis_url is None

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        """The trusted proxies given as addresses or CIDRs."""
        return tuple(p for p in self.trusted_proxies if not isinstance(p, str))

    @property
    def trusted_hosts(self) -> tuple[str, ...]:
        """The trusted proxies given by name (rotator/api/proxies.py resolves them)."""
        return tuple(p for p in self.trusted_proxies if isinstance(p, str))

    @property
    def keyring(self) -> KeyRing:
        if self.master_key is None:
            raise SettingsError(
                "master_key", f"not set and no {MASTER_KEY_FILE} in {self.data_dir}"
            )
        return self.master_key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build and validate settings; raises SettingsError naming the bad variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _PARSERS.get(f.name, _parse_str)(f.name, raw.strip())
        if "master_key" not in values:
            data_dir = values.get("data_dir", overrides.get("data_dir", cls.data_dir))
            key_file = Path(data_dir) / MASTER_KEY_FILE
            if key_file.exists():
                values["master_key"] = _parse_keyring("master_key", key_file.read_text().strip())
        values.update(overrides)
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise SettingsError("port", f"{self.port} is not a TCP port")
        if self.workers < 1:
            raise SettingsError("workers", "must be at least 1")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("log_level", f"{self.log_level!r} is not a log level")
        for name in (
            "demo_rate_per_min",
            "demo_burst",
            "redis_timeout_ms",
            "usage_retention_days",
            "events_maxlen",
            "webhook_max_attempts",
            "session_idle_minutes",
            "session_max_hours",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(name, "must be at least 1")
        if self.demo_rate_per_min > 60_000:
            # the throttle's interval is 60000 // rate ms: a rate above one a millisecond
            # would make it 0, which the script cannot store (SET ... PX 0)
            raise SettingsError("demo_rate_per_min", "must be at most 60000 (one a millisecond)")
        if self.log_summary_s < 0:
            raise SettingsError("log_summary_s", "must be 0 (none) or more")
        if self.webhook_timeout_s <= 0:
            raise SettingsError("webhook_timeout_s", "must be positive")
        for name in ("redis_url", "queue_url"):
            url = getattr(self, name)
            if url is not None:
                _check_store_url(name, url, cluster=name == "redis_url" and self.redis_cluster)
        _check_tls_files(self.tls_cert_file, self.tls_key_file)
        if self.redis_cluster and self.redis_url is None:
            raise SettingsError("redis_cluster", "needs ROTATOR_REDIS_URL naming a cluster node")

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, doc) for every setting, for `rotator --help`."""
        rows = []
        for f in fields(cls):
            default = f.default
            if isinstance(default, bool):
                shown = "1" if default else "0"
            elif default is None or default == ():
                shown = "-"
            else:
                shown = str(default)
            rows.append((PREFIX + f.name.upper(), shown, f.metadata["doc"]))
        return rows


def _check_store_url(name: str, url: str, *, cluster: bool) -> None:
    """Read the URL as every Redis client will (rotator/store/address.py), and load the TLS
    files it names, so a typo fails the start with one line instead of every connection."""
    try:
        address = StoreAddress.parse(url)
        address.redis_kwargs(cluster=cluster)  # refuses a socket path or a database > 0
    except AddressError as exc:
        raise SettingsError(name, str(exc)) from None
    if address.tls is not None:
        try:
            address.tls.context()
        except (OSError, ssl.SSLError) as exc:
            # names the file (not secret) and the reason; never the URL's password
            reason = exc.strerror or getattr(exc, "reason", None) or type(exc).__name__
            files = ", ".join(
                f"{param}={path}"
                for param, path in (
                    ("ssl_ca_certs", address.tls.ca_file),
                    ("ssl_certfile", address.tls.cert_file),
                    ("ssl_keyfile", address.tls.key_file),
                )
                if path is not None
            )
            raise SettingsError(name, f"cannot load the TLS files ({files}): {reason}") from None


def _check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Both or neither, and loadable as a pair: a wrong file fails the start with one line
    naming the variable, not every handshake later (the key itself is never shown)."""
    if (cert is None) != (key is None):
        missing = "tls_key_file" if key is None else "tls_cert_file"
        given = "ROTATOR_TLS_CERT_FILE" if key is None else "ROTATOR_TLS_KEY_FILE"
        raise SettingsError(missing, f"required with {given}")
    if cert is None or key is None:
        return
    for name, path in (("tls_cert_file", cert), ("tls_key_file", key)):
        if not path.is_file():
            raise SettingsError(name, f"{path} is not a readable file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise SettingsError(
            "tls_cert_file", f"cannot use {cert} with the key {key}: {reason}"
        ) from None


def _parse_str(name: str, raw: str) -> str:
    return raw


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(name, f"{raw!r} is not an integer") from None


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(name, f"{raw!r} is not a number") from None


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(name, f"{raw!r} is not a boolean (use 1 or 0)")


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _is_host_name(text: str) -> bool:
    """RFC 1123 labels, and a last label that is not all digits (so that a mistyped
    address such as 10.0.0.300 is refused, not looked up)."""
    labels = text.removesuffix(".").split(".")
    return (
        len(text) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _parse_proxies(name: str, raw: str) -> tuple[Network | str, ...]:
    proxies: list[Network | str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            proxies.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            if not _is_host_name(part):
                raise SettingsError(name, f"{exc} (nor a host name)") from None
            proxies.append(part.lower())
    return tuple(proxies)


def _parse_keyring(name: str, raw: str) -> KeyRing:
    try:
        return KeyRing.parse(raw)
    except KeyRingError as exc:
        raise SettingsError(name, str(exc)) from None


_PARSERS = {
    "redis_cluster": _parse_bool,
    "webhook_allow_private": _parse_bool,
    "data_dir": lambda name, raw: Path(raw),
    "tls_cert_file": lambda name, raw: Path(raw),
    "tls_key_file": lambda name, raw: Path(raw),
    "master_key": _parse_keyring,
    "port": _parse_int,
    "workers": _parse_int,
    "trusted_proxies": _parse_proxies,
    "demo_rate_per_min": _parse_int,
    "demo_burst": _parse_int,
    "redis_timeout_ms": _parse_int,
    "usage_retention_days": _parse_int,
    "events_maxlen": _parse_int,
    "webhook_timeout_s": _parse_float,
    "webhook_max_attempts": _parse_int,
    "session_idle_minutes": _parse_int,
    "session_max_hours": _parse_int,
    "log_level": lambda name, raw: raw.upper(),
    "log_summary_s": _parse_float,
}
