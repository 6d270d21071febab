"""Settings: one object built from ROTATOR_* environment variables, validated once.

Nothing reads the environment at import time: `Settings.from_env()` is called by
the CLI (or a test) and the result is passed explicitly to whatever needs it.
Each setting is declared once, with `setting(...)`: its default, its help text
(what `rotator --help` and the README table print), its parser and its bounds.
Parsing and validation are generic over that declaration, so a new setting is one
field and nothing else.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rotator.crypto import KeyRing, KeyRingError
from rotator.domain import tokens
from rotator.store.address import AddressError, StoreAddress

log = logging.getLogger(__name__)

PREFIX = "ROTATOR_"
MASTER_KEY_FILE = "master.key"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

Parser = Callable[[str, str], Any]
"""(setting name, stripped raw text) -> value; raises SettingsError naming the variable."""

Check = Callable[["Settings", Any], "str | None"]
"""(all settings, this setting's value) -> the problem, or None when the value is fine."""


NOT_SETTINGS = frozenset(
    ("ROTATOR_PUBLIC_PORT", "ROTATOR_PUBLIC_HTTP_PORT", "ROTATOR_MODEL_EXAMPLES",
     "ROTATOR_MODEL_STRICT")
)  # fmt: skip
"""ROTATOR_* variables that docker compose (docker-compose.yml) or the tests read, not us."""


def _warn_unknown(env: Mapping[str, str], known: set[str]) -> None:
    """A ROTATOR_* variable that is no setting is most likely a misspelled one, which would
    otherwise be ignored in silence: name it, with the setting it may have meant."""
    unknown = (n for n in env if n.startswith(PREFIX) and n not in known | NOT_SETTINGS)
    for name in sorted(unknown):
        # compared without the prefix every name shares, which would make any two look alike
        suffixes = [k.removeprefix(PREFIX) for k in sorted(known)]
        close = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1)
        meant = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        log.warning("%s is not a setting and is ignored%s (rotator --help lists them)", name, meant)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = PREFIX + name.upper()
        self.problem = problem
        super().__init__(f"{self.name}: {problem}")


def setting(
    default: Any,
    doc: str,
    *,
    parse: Parser | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    above: float | None = None,
    bound_note: str = "",
    check: Check | None = None,
) -> Any:
    """One setting, declared once: a dataclass field whose metadata carries the help text,
    the parser of its variable and its bounds (checked by `Settings.from_env`).

    The parser follows from the default's type (int, float, bool, Path; else text) unless
    `parse` says; `bound_note` follows the bound's message, to say why the bound is there;
    `check` is for a rule bounds cannot say (it sees the other settings too)."""
    return field(
        default=default,
        metadata={
            "doc": doc,
            "parse": parse or _PARSE_BY_TYPE.get(type(default), _parse_str),
            "at_least": at_least,
            "at_most": at_most,
            "above": above,
            "bound_note": bound_note,
            "check": check,
        },
    )


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


def _parse_path(name: str, raw: str) -> Path:
    return Path(raw)


def _parse_upper(name: str, raw: str) -> str:
    return raw.upper()


def _parse_lower(name: str, raw: str) -> str:
    return raw.lower()


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


_PARSE_BY_TYPE: dict[type, Parser] = {
    int: _parse_int,
    float: _parse_float,
    bool: _parse_bool,
    type(Path()): _parse_path,  # PosixPath or WindowsPath
}


def _tcp_port(settings: Settings, port: int) -> str | None:
    return None if 1 <= port <= 65535 else f"{port} is not a TCP port"


MIN_ADMIN_TOKEN_CHARS = 20
"""As an imported token's minimum (SPEC §7): the operator token opens every tenant."""


def _admin_token(settings: Settings, token: str | None) -> str | None:
    # printable ASCII only: the API reads the Bearer header as bytes (Latin-1), so a
    # non-ASCII token could sign in to the console but never match on the API.
    # The problem never quotes the value: it is a secret
    if token is None or (
        len(token) >= MIN_ADMIN_TOKEN_CHARS
        and all("!" <= c <= "~" for c in token)
        and tokens.parse(token) is None
    ):
        return None
    return (
        f"must be at least {MIN_ADMIN_TOKEN_CHARS} characters, without spaces, control "
        "or non-ASCII characters, and not shaped as a tenant's token (kta_…, krc_…, kra_…: "
        "the API takes those for a tenant's) (it opens every tenant); make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )


def _log_level(settings: Settings, level: str) -> str | None:
    return None if level.upper() in LOG_LEVELS else f"{level!r} is not a log level"


LOG_FORMATS = ("text", "json")


def _log_format(settings: Settings, value: str) -> str | None:
    return None if value in LOG_FORMATS else f"{value!r} is not one of {', '.join(LOG_FORMATS)}"


def _redis_url(settings: Settings, url: str | None) -> str | None:
    return None if url is None else _store_url_problem(url, cluster=settings.redis_cluster)


def _queue_url(settings: Settings, url: str | None) -> str | None:
    return None if url is None else _store_url_problem(url, cluster=False)


def _a_directory(settings: Settings, path: Path) -> str | None:
    """A data dir that exists must be a directory (else: 'cannot lock .../run.lock')."""
    if path.exists() and not path.is_dir():
        return f"{path} is not a directory"
    return None


def _tls_cert(settings: Settings, cert: Path | None) -> str | None:
    """Both files or neither, loadable as a pair: a wrong file fails the start with one
    line naming the variable, not every handshake later (the key itself is never shown)."""
    key = settings.tls_key_file
    if cert is None:
        return None if key is None else "required with ROTATOR_TLS_KEY_FILE"
    if not cert.is_file():
        return f"{cert} is not a readable file"
    if key is None or not key.is_file():
        return None  # tls_key_file's own check names it
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        return f"cannot use {cert} with the key {key}: {reason}"
    return None


def _tls_key(settings: Settings, key: Path | None) -> str | None:
    if key is None:
        return None if settings.tls_cert_file is None else "required with ROTATOR_TLS_CERT_FILE"
    return None if key.is_file() else f"{key} is not a readable file"


def _cluster_needs_url(settings: Settings, cluster: bool) -> str | None:
    if cluster and settings.redis_url is None:
        return "needs ROTATOR_REDIS_URL naming a cluster node"
    return None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the API, the workers and the CLI are configured with."""

    redis_url: str | None = setting(
        None,
        "redis://[:password@]host:port/db of the data store (rediss:// = TLS, hostname "
        "checked; ?ssl_ca_certs=, ssl_cert_reqs=, ssl_check_hostname=, ssl_certfile=, "
        "ssl_keyfile=: docs/tls.md); unset = embedded Valkey",
        check=_redis_url,
    )
    redis_cluster: bool = setting(
        False,
        "1 = REDIS_URL names one node of a Redis/Valkey Cluster",
        check=_cluster_needs_url,
    )
    queue_url: str | None = setting(
        None,
        "Redis for the arq job queue, a URL as REDIS_URL; default: REDIS_URL "
        "(required with a cluster)",
        check=_queue_url,
    )
    data_dir: Path = setting(
        Path("var"),
        "embedded Valkey data (AOF) and the generated master key",
        check=_a_directory,
    )
    master_key: KeyRing | None = setting(
        None,
        "base64 of 32 bytes, or 'id:base64,id:base64,...' (first encrypts, all decrypt); "
        "default: DATA_DIR/master.key",
        parse=_parse_keyring,
    )
    admin_token: str | None = setting(
        None,
        "operator token for /v1/admin/* and the operator console: 20+ printable ASCII "
        "characters, no spaces; unset = operator API disabled",
        check=_admin_token,
    )
    host: str = setting("127.0.0.1", "address the API listens on")
    port: int = setting(8080, "port the API listens on", check=_tcp_port)
    workers: int = setting(1, "uvicorn worker processes for the API", at_least=1)
    tls_cert_file: Path | None = setting(
        None,
        "PEM certificate (chain) for https: `rotator run`/`serve` then serve https "
        "directly (single-machine installs); with docker compose, nginx's certificate "
        "(docs/https.md); `make dev-cert` makes a self-signed one for trying it",
        parse=_parse_path,
        check=_tls_cert,
    )
    tls_key_file: Path | None = setting(
        None,
        "the PEM private key of TLS_CERT_FILE (both or neither)",
        parse=_parse_path,
        check=_tls_key,
    )
    trusted_proxies: tuple[Network | str, ...] = setting(
        (),
        "comma-separated CIDRs or host names (e.g. the proxy's container name; resolved "
        "at start and every 30 s) whose X-Forwarded-For is honoured",
        parse=_parse_proxies,
    )
    webhook_allow_private: bool = setting(
        False,
        "1 = allow webhook URLs on loopback/private addresses (tests, dev)",
    )
    log_level: str = setting(
        "INFO", "DEBUG, INFO, WARNING or ERROR", parse=_parse_upper, check=_log_level
    )
    log_format: str = setting(
        "text",
        "text (readable lines) or json (one object a line, for log shippers: time, level, "
        "logger, message, request_id and tenant where known)",
        parse=_parse_lower,
        check=_log_format,
    )
    log_summary_s: float = setting(
        60.0,
        "seconds between the INFO lines that sum up deliveries (API) and jobs (worker); 0 = none",
        at_least=0,
        bound_note="(0 = none)",
    )
    demo_rate_per_min: int = setting(
        60,
        "demo tenants: sustained requests per minute per client IP",
        at_least=1,
        # the throttle's interval is 60000 // rate ms: a rate above one a millisecond
        # would make it 0, which the script cannot store (SET ... PX 0)
        at_most=60_000,
        bound_note="(one a millisecond)",
    )
    demo_burst: int = setting(10, "demo tenants: burst allowance per IP", at_least=1)
    redis_timeout_ms: int = setting(
        1000, "a Redis call slower than this fails fast with 503 store unavailable", at_least=1
    )
    usage_retention_days: int = setting(
        35, "days of per-key usage history kept (counters expire)", at_least=1
    )
    audit_retention_days: int = setting(
        90,
        "days an audit record is kept (older ones are trimmed as new ones are written)",
        at_least=1,
    )
    events_maxlen: int = setting(10000, "approximate cap of each tenant's event stream", at_least=1)
    webhook_timeout_s: float = setting(
        5.0, "how long one webhook attempt waits for the status line, seconds", above=0
    )
    webhook_max_attempts: int = setting(
        8, "attempts per webhook event before it is recorded as failed", at_least=1
    )
    metrics: bool = setting(
        True,
        "1 = the API serves /metrics (Prometheus) and counts for it; 0 = neither",
    )
    metrics_token: str | None = setting(
        None,
        "bearer token a Prometheus scrape of /metrics sends; unset = the operator token",
    )
    metrics_per_tenant: bool = setting(
        False,
        "1 = /metrics also counts deliveries per tenant (label `tenant`): a series per tenant "
        "and outcome, so Prometheus' memory grows with the tenants",
    )
    worker_metrics_port: int = setting(
        0,
        "port where the worker serves /metrics on HOST (no token: keep it on a private "
        "network); 0 = none",
        at_least=0,
        at_most=65535,
    )
    session_idle_minutes: int = setting(
        30, "console: a session unused this long signs out (minutes)", at_least=1
    )
    session_max_hours: int = setting(
        12, "console: a session ends this long after sign-in (hours)", at_least=1
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
        _warn_unknown(env, {PREFIX + f.name.upper() for f in fields(cls)})
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = f.metadata["parse"](f.name, raw.strip())
        if "master_key" not in values:
            data_dir = values.get("data_dir", overrides.get("data_dir", cls.data_dir))
            key_file = Path(data_dir) / MASTER_KEY_FILE
            if key_file.exists():
                try:
                    values["master_key"] = _parse_keyring(
                        "master_key", key_file.read_text().strip()
                    )
                except SettingsError as exc:  # named by the file it came from
                    raise SettingsError(
                        "master_key",
                        f"not set, and {key_file.resolve()} holds no key: {exc.problem}",
                    ) from None
        values.update(overrides)
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        """Each setting's bounds and check, from its declaration."""
        for f in fields(self):
            problem = _bounds_problem(getattr(self, f.name), f.metadata)
            check = f.metadata["check"]
            if problem is None and check is not None:
                problem = check(self, getattr(self, f.name))
            if problem is not None:
                raise SettingsError(f.name, problem)

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


def _bounds_problem(value: Any, meta: Mapping[str, Any]) -> str | None:
    note = f" {meta['bound_note']}" if meta["bound_note"] else ""
    if meta["at_least"] is not None and value < meta["at_least"]:
        return f"must be at least {meta['at_least']}{note}"
    if meta["at_most"] is not None and value > meta["at_most"]:
        return f"must be at most {meta['at_most']}{note}"
    if meta["above"] is not None and value <= meta["above"]:
        return "must be positive" if meta["above"] == 0 else f"must be above {meta['above']}"
    return None


def _store_url_problem(url: str, *, cluster: bool) -> str | None:
    """Read the URL as every Redis client will (rotator/store/address.py), and load the TLS
    files it names, so a typo fails the start with one line instead of every connection."""
    try:
        address = StoreAddress.parse(url)
        address.redis_kwargs(cluster=cluster)  # refuses a socket path or a database > 0
    except AddressError as exc:
        return str(exc)
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
            return f"cannot load the TLS files ({files}): {reason}"
    return None
