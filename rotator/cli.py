"""`rotator`: run the service, and administer tenants, services, keys and apps.

Administrative commands talk to Redis directly through the store functions (the
same checks as the HTTP API), not over HTTP. Without ROTATOR_REDIS_URL every
command uses the data dir's embedded Valkey: it joins the one already running
(`rotator run` / `rotator serve`) or starts one for its own duration.

Exit codes: 0 done; 1 the request was refused (unknown tenant, slug taken, bad
input) or rewrap could not open some blobs; 2 bad settings or unreachable Redis
(one line on stderr naming the setting, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import getpass
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rotator.crypto import KeyRing, KeyRingError, generate_master_key
from rotator.domain.errors import RotatorError
from rotator.settings import MASTER_KEY_FILE, Settings, SettingsError

T = TypeVar("T")

DEMO_SERVICE = "openai"
STOP_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 60.0


class CliError(Exception):
    """A one-line failure for stderr, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """Progress and notes go to stderr, so stdout stays parseable."""
    print(f"rotator: {message}", file=sys.stderr, flush=True)


# --- settings, master key, data store ----------------------------------------------------------
def redact(url: str) -> str:
    """A Redis URL fit for a message: the password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def ensure_master_key(settings: Settings) -> Settings:
    """The settings with a key ring; in embedded mode, generate DATA_DIR/master.key if none.

    O_EXCL makes the generation race-free: of two processes starting at once, one
    writes the file and both use it.
    """
    if settings.master_key is not None or not settings.embedded:
        settings.keyring  # noqa: B018 -- raises SettingsError naming ROTATOR_MASTER_KEY
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / MASTER_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
    else:
        text = generate_master_key()
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        say(
            f"generated a master key in {path.resolve()} (mode 0600); back it up: "
            "without it the stored provider keys cannot be decrypted"
        )
    try:
        ring = KeyRing.parse(text)
    except KeyRingError as exc:
        raise SettingsError("master_key", f"{path}: {exc}") from None
    return dataclasses.replace(settings, master_key=ring)


def check_reachable(settings: Settings) -> None:
    """PING the data store; exit 2 naming ROTATOR_REDIS_URL when it does not answer."""
    import redis

    assert settings.redis_url is not None
    timeout_s = settings.redis_timeout_ms / 1000
    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        with contextlib.closing(client):
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(
            f"ROTATOR_REDIS_URL: {redact(settings.redis_url)} does not answer ({reason})", 2
        ) from None


@contextlib.contextmanager
def data_store(settings: Settings) -> Iterator[Settings]:
    """Settings whose redis_url answers: the configured server, or the embedded one."""
    from rotator.embedded import SharedEmbedded

    shared = None
    if settings.embedded:
        shared = SharedEmbedded(settings.data_dir)
        try:
            url = shared.acquire()
        except (RuntimeError, OSError) as exc:
            raise CliError(f"ROTATOR_DATA_DIR: embedded Valkey: {exc}", 2) from None
        settings = dataclasses.replace(settings, redis_url=url)
    try:
        check_reachable(settings)
        yield settings
    finally:
        if shared is not None:
            shared.release()


def with_store(settings: Settings, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run `work(redis, durability)` against the data store, in a fresh event loop."""
    from rotator.store.connection import Durability, connect

    async def go() -> T:
        client = connect(settings)
        try:
            return await work(client, Durability())
        finally:
            await client.aclose()

    return asyncio.run(go())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def emit(args: argparse.Namespace, fields: dict[str, Any]) -> None:
    """The command's result on stdout: `name: value` lines, or one JSON object (--json)."""
    if args.json:
        print(json.dumps(fields))
    else:
        for name, value in fields.items():
            print(f"{name}: {'-' if value is None else value}")


# --- administrative commands --------------------------------------------------------------------
async def _existing_tenant(redis: Any, tenant: str) -> None:
    from rotator.store import tenants

    await tenants.get_tenant(redis, tenant)  # NotFound: never write into a tenant that is not


def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import tenants

    with data_store(settings) as live:
        created = with_store(
            live,
            lambda r, d: tenants.create_tenant(
                r, d, name=args.name, demo=args.demo, now_ms=now_ms()
            ),
        )
    emit(
        args,
        {
            "tenant": created.record.id,
            "name": created.record.name,
            "demo": created.record.demo,
            "admin_token": created.admin_token,
            "client_token": created.client_token,
        },
    )
    say("the tokens are shown once: only their hashes are stored")
    return 0


def cmd_tenant_list(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import tenants

    with data_store(settings) as live:
        records = with_store(live, lambda r, d: tenants.list_tenants(r))
    if args.json:
        print(json.dumps([{"tenant": t.id, "name": t.name, "demo": t.demo} for t in records]))
    else:
        for t in records:
            print(f"{t.id}  {t.name}{'  (demo)' if t.demo else ''}")
    return 0


def cmd_service_create(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import services

    async def work(redis: Any, durability: Any) -> Any:
        await _existing_tenant(redis, args.tenant)
        return await services.create_service(
            redis,
            durability,
            args.tenant,
            slug=args.slug,
            policy=args.policy,
            max_daily_requests=args.max_daily,
            key_ttl_minutes=args.ttl_minutes,
            now_ms=now_ms(),
        )

    with data_store(settings) as live:
        svc = with_store(live, work)
    emit(
        args,
        {
            "service": svc.slug,
            "policy": svc.policy,
            "max_daily_requests": svc.max_daily_requests,
            "key_ttl_minutes": svc.key_ttl_minutes,
        },
    )
    return 0


def read_secret() -> str:
    """The provider key: from stdin when piped, else a hidden prompt. Never from argv."""
    if sys.stdin.isatty():
        return getpass.getpass("provider key (input hidden): ")
    return sys.stdin.read()


def cmd_key_add(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import services

    settings = ensure_master_key(settings)
    secret = read_secret().strip()

    async def work(redis: Any, durability: Any) -> Any:
        await _existing_tenant(redis, args.tenant)
        return await services.add_key(
            redis,
            durability,
            settings.keyring,
            args.tenant,
            args.slug,
            label=args.label,
            secret=secret,
            max_daily_requests=args.max_daily,
            now_ms=now_ms(),
        )

    with data_store(settings) as live:
        key = with_store(live, work)
    emit(
        args,
        {
            "key_id": key.id,
            "label": key.label,
            "key_masked": key.masked,
            "max_daily_requests": key.max_daily_requests,
        },
    )
    return 0


def cmd_app_create(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import apps

    async def work(redis: Any, durability: Any) -> Any:
        await _existing_tenant(redis, args.tenant)
        return await apps.add_app(
            redis,
            durability,
            args.tenant,
            name=args.name,
            ip_allowlist=args.allow,
            max_daily_requests=args.max_daily,
            now_ms=now_ms(),
        )

    with data_store(settings) as live:
        created = with_store(live, work)
    emit(
        args,
        {
            "app_id": created.record.id,
            "name": created.record.name,
            "ip_allowlist": ",".join(created.record.ip_allowlist),
            "max_daily_requests": created.record.max_daily_requests,
            "app_token": created.app_token,
        },
    )
    say("the app token is shown once: only its hash is stored")
    return 0


def cmd_rewrap(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import rewrap

    settings = ensure_master_key(settings)
    ring = settings.keyring
    say(f"re-encrypting every stored secret under master key {ring.primary_id!r}")
    with data_store(settings) as live:
        report = with_store(
            live, lambda r, d: rewrap.rewrap_all(r, d, ring, progress=lambda line: say(line))
        )
    emit(
        args,
        {
            "rewrapped": report.rewrapped,
            "already_current": report.current,
            "vanished": report.vanished,
            "failed": len(report.failed),
        },
    )
    for where in report.failed:
        say(f"cannot decrypt {where} with any configured master key")
    return 1 if report.failed else 0


# --- serve, worker, run -------------------------------------------------------------------------
def uvicorn_log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["rotator"] = {"handlers": ["default"], "level": level, "propagate": False}
    config["loggers"]["uvicorn"]["level"] = level
    return config


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    settings = ensure_master_key(settings)
    with data_store(settings) as live:
        # uvicorn's worker processes build their settings from the environment
        os.environ["ROTATOR_REDIS_URL"] = live.redis_url or ""
        uvicorn.run(
            "rotator.api.app:create_app_from_env",
            factory=True,
            host=live.host,
            port=live.port,
            workers=live.workers,
            loop="uvloop",
            http="httptools",
            # query strings carry tokens: no access log
            access_log=False,
            # the app resolves client IPs itself (ROTATOR_TRUSTED_PROXIES): uvicorn must not
            proxy_headers=False,
            server_header=False,
            log_config=uvicorn_log_config(live.log_level),
        )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from workers import run_worker
    except ImportError as exc:
        raise CliError(f"worker: the workers package is not available ({exc})") from None
    settings = ensure_master_key(settings)  # embedded mode: the same generated key as serve
    if settings.redis_url is not None:
        check_reachable(settings)
    run_worker(settings)
    return 0


class StopRequest:
    """SIGINT/SIGTERM set a flag; `rotator run` then stops its children in order."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.requested = True


def spawn(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`rotator <command>` as a child that dies with us (even if we are SIGKILLed)."""
    from rotator.embedded import _die_with_parent

    # a session of its own: the terminal's Ctrl-C reaches only `rotator run`, which stops
    # the children in order (API first, so no request finds the store gone)
    return subprocess.Popen(
        [sys.executable, "-m", "rotator.cli", command],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stop_child(name: str, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        say(f"stopping {name}")
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_TIMEOUT_S:.0f}s; killing it")
            process.kill()
            process.wait()


def base_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def wait_healthy(
    url: str, children: list[tuple[str, subprocess.Popen[bytes]]], stop: StopRequest
) -> bool:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline and not stop.requested:
        for name, process in children:
            if process.poll() is not None:
                raise CliError(f"{name} exited with code {process.returncode} during start")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    if stop.requested:
        return False
    raise CliError(f"the API did not answer {url}/healthz within {HEALTH_TIMEOUT_S:.0f}s")


async def prepare_demo(redis: Any, durability: Any, ring: KeyRing) -> tuple[str, bool, str]:
    """(demo tenant id, created now?, a fresh client token). The previous token is revoked."""
    from rotator.store import keys, services, tenants

    created = False
    stored = await redis.get(keys.DEMO_TENANT)
    tenant = stored.decode() if stored else None
    if tenant is None or not await redis.exists(keys.tenant(tenant)):
        t = await tenants.create_tenant(redis, durability, name="demo", demo=True, now_ms=now_ms())
        tenant = t.record.id
        await services.create_service(
            redis, durability, tenant, slug=DEMO_SERVICE, policy="usage", now_ms=now_ms()
        )
        for n in (1, 2, 3):
            fake = "sk-demo-" + secrets.token_urlsafe(24)
            await services.add_key(
                redis, durability, ring, tenant, DEMO_SERVICE,
                label=f"Demo key {n}", secret=fake, now_ms=now_ms(),
            )  # fmt: skip
        pipe = redis.pipeline(transaction=False)
        pipe.set(keys.DEMO_TENANT, tenant)  # last: a crash before it just makes a new demo
        await durability.execute(pipe)
        created = True
    token = await tenants.issue_client_token(redis, durability, tenant)
    return tenant, created, token


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    stop = StopRequest()
    settings = ensure_master_key(settings)
    admin_token = settings.admin_token
    generated_admin = admin_token is None
    if admin_token is None:
        admin_token = secrets.token_urlsafe(32)
    url = base_url(settings)
    with data_store(settings) as live:
        tenant, created, client_token = with_store(
            live, lambda r, d: prepare_demo(r, d, live.keyring)
        )
        env = {
            **os.environ,
            "ROTATOR_REDIS_URL": live.redis_url or "",
            "ROTATOR_ADMIN_TOKEN": admin_token,
            "ROTATOR_DATA_DIR": str(Path(live.data_dir).resolve()),
        }
        children: list[tuple[str, subprocess.Popen[bytes]]] = []
        code = 0
        try:
            children.append(("API", spawn("serve", env)))
            children.append(("worker", spawn("worker", env)))
            if wait_healthy(url, children, stop):
                print_banner(
                    live, settings.embedded, url, admin_token, generated_admin, tenant, created,
                    client_token,
                )  # fmt: skip
            while not stop.requested:
                for name, process in children:
                    if process.poll() is not None:
                        say(f"{name} exited with code {process.returncode}; stopping")
                        stop.requested = True
                        code = 1
                time.sleep(0.2)
        finally:
            for name, process in children:  # API first, then the worker, then Valkey
                stop_child(name, process)
            if settings.embedded:
                say("stopping the embedded Valkey")  # data_store's exit, right after this
    say("stopped")
    return code


def print_banner(
    settings: Settings,
    embedded: bool,
    url: str,
    admin_token: str,
    generated_admin: bool,
    tenant: str,
    created: bool,
    client_token: str,
) -> None:
    store = (
        f"embedded Valkey, data in {Path(settings.data_dir).resolve()}"
        if embedded
        else redact(settings.redis_url or "")
    )
    admin_note = (
        "generated for this run; set ROTATOR_ADMIN_TOKEN to keep one"
        if generated_admin
        else "from ROTATOR_ADMIN_TOKEN"
    )
    lines = [
        "",
        f"keyrotator is up on {url}  (Ctrl-C stops the API, the worker and the store)",
        f"  store:             {store}",
        f"  operator token:    {admin_token}",
        f"                     ({admin_note})",
        f"  demo tenant:       {tenant}{' (created now)' if created else ''}",
        f"  demo client token: {client_token}",
        "                     (new for this run: the previous one is revoked)",
        "",
        "Try it:",
        f'  curl -s "{url}/v1/next?service={DEMO_SERVICE}&token={client_token}&mask=1"',
        f'  curl -s -H "Authorization: Bearer {admin_token}" {url}/v1/admin/tenants',
        f"  API documentation: {url}/schema",
        "",
    ]
    print("\n".join(lines), flush=True)


# --- parser -------------------------------------------------------------------------------------
def settings_help() -> str:
    lines = ["settings (environment variables; unset = default):"]
    for name, default, doc in Settings.describe():
        lines.append(f"  {name:<31} default {default}")
        lines.append(f"      {doc}")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rotator",
        description="keyrotator: hands out rotated provider API keys to client apps.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def command(parent: Any, name: str, func: Callable[..., int], help_: str, **kw: Any) -> Any:
        p = parent.add_parser(name, help=help_, description=help_, **kw)
        p.set_defaults(func=func)
        return p

    command(sub, "serve", cmd_serve, "run the HTTP API (uvicorn, ROTATOR_WORKERS processes)")
    command(sub, "worker", cmd_worker, "run an arq worker (events, webhooks, expiry sweep)")
    command(
        sub, "run", cmd_run,
        "embedded Valkey + API + worker, with a demo tenant: what `make run` starts",
    )  # fmt: skip

    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = command(tenant, "create", cmd_tenant_create, "create a tenant; prints its tokens once",
                parents=[out])  # fmt: skip
    p.add_argument("name")
    p.add_argument("--demo", action="store_true", help="masked keys, per-IP throttling")
    command(tenant, "list", cmd_tenant_list, "list tenants", parents=[out])

    service = sub.add_parser("service", help="services").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = command(service, "create", cmd_service_create, "create a service", parents=[out])
    p.add_argument("tenant")
    p.add_argument("slug")
    p.add_argument("--policy", required=True, choices=["manual", "time", "usage"])
    p.add_argument("--max-daily", type=positive_int, help="daily request limit of the service")
    p.add_argument("--ttl-minutes", type=positive_int, help="key lifetime (time policy)")

    key = sub.add_parser("key", help="provider keys").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = command(
        key, "add", cmd_key_add,
        "add a provider key; the secret is read from stdin, or a hidden prompt on a terminal",
        parents=[out],
    )  # fmt: skip
    p.add_argument("tenant")
    p.add_argument("slug")
    p.add_argument("--label", required=True)
    p.add_argument("--max-daily", type=positive_int, help="daily request limit of this key")

    app = sub.add_parser("app", help="client apps").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = command(app, "create", cmd_app_create, "create an app; prints its token once",
                parents=[out])  # fmt: skip
    p.add_argument("tenant")
    p.add_argument("name")
    p.add_argument("--allow", action="append", default=[], metavar="CIDR",
                   help="allowed client network (repeatable)")  # fmt: skip
    p.add_argument("--max-daily", type=positive_int, help="daily request limit of this app")

    command(sub, "rewrap", cmd_rewrap,
            "re-encrypt every stored secret under the first key of ROTATOR_MASTER_KEY",
            parents=[out])  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.func(args, settings)
    except SettingsError as exc:
        print(f"rotator: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"rotator: {exc}", file=sys.stderr)
        return exc.code
    except RotatorError as exc:  # refused by the store's checks: the message names the field
        print(f"rotator: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
