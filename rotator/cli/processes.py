"""serve, worker and run: the service's processes, and `make run`'s orchestration."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rotator.cli.children import Child
from rotator.cli.common import (
    CliError,
    check_reachable,
    now_ms,
    redact,
    say,
    unanswered,
    unlocked_store,
    with_store,
)
from rotator.cli.maintenance import migrate_before_serving, refuse_a_newer_store
from rotator.cli.preflight import RunLock, check_port
from rotator.crypto import KeyRing
from rotator.embedded import refused
from rotator.metrics import directory
from rotator.settings import Settings
from rotator.tuning import HEALTH_TIMEOUT_S

log = logging.getLogger("rotator.serve")

DEMO_SERVICE = "openai"
GUIDE_DEMO_TOKEN = "52yseGC525k55YpyHUeAdoYrb77WYJ037sPHhQ"
"""The hosted service's guide's "Try the demo" token: the demo tenant accepts it (an imported
client token), so the guide's curl line works against this instance with only the host
changed. It is public, like the guide: the demo's keys are fake, always masked and its
traffic throttled per client address."""


class _Stopped(Exception):
    """SIGINT/SIGTERM, once uvicorn has shut down: it restores the handlers it found (ours)
    and raises the signal again, and ours ends `serve` with its stop line, exit status 0."""


def _stopped(signum: int, _frame: Any) -> None:
    raise _Stopped(signal.Signals(signum).name)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from rotator import logs

    if not settings.embedded:
        check_reachable(settings)  # the store's problem first: it is named as before
    check_port(settings.host, settings.port)
    with unlocked_store(settings, seals=True) as live:
        migrate_before_serving(live)
        # uvicorn's worker processes build their settings from the environment
        os.environ["ROTATOR_REDIS_URL"] = live.redis_url or ""
        # uvicorn applies the same in each of its processes
        logs.configure(live.log_level, live.log_format)
        log.info(
            "serving %s://%s:%d with %d worker process%s; store %s",
            live.scheme, live.host, live.port, live.workers, "" if live.workers == 1 else "es",
            "embedded Valkey in " + str(live.data_dir.resolve()) if settings.embedded
            else redact(live.redis_url or ""),
        )  # fmt: skip
        if live.admin_token is None:
            log.info("the operator API and console are off: ROTATOR_ADMIN_TOKEN is not set")
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _stopped)
        # every uvicorn process writes its metrics there; a scrape of any one reads them all
        metrics_dir = directory.prepare() if live.metrics else None
        try:
            _uvicorn(uvicorn, live)
        except _Stopped as stop:
            log.info("stopped serving %s://%s:%d (%s)", live.scheme, live.host, live.port, stop)
        else:
            log.info("stopped serving %s://%s:%d", live.scheme, live.host, live.port)
        finally:
            if metrics_dir is not None:
                directory.remove(metrics_dir)
    return 0


def _uvicorn(uvicorn: Any, live: Settings) -> None:
    from rotator import logs
    from rotator.api.app import SERVE_PID_ENV

    if live.workers > 1:
        # uvicorn's worker processes read it to go with this process (api/app.py)
        os.environ[SERVE_PID_ENV] = str(os.getpid())
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
        log_config=logs.log_config(live.log_level, live.log_format),
        # https directly (a single-machine install); behind nginx these stay unset
        ssl_certfile=None if live.tls_cert_file is None else str(live.tls_cert_file),
        ssl_keyfile=None if live.tls_key_file is None else str(live.tls_key_file),
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "check", False):
        return worker_check(settings)
    try:
        from workers import run_worker
    except ImportError as exc:
        raise CliError(f"worker: the workers package is not available ({exc})") from None
    # embedded mode: joins (or starts) the data dir's Valkey, and uses the same key as serve
    with unlocked_store(settings, seals=False) as live:
        refuse_a_newer_store(live)
        run_worker(live)
    return 0


def worker_check(settings: Settings) -> int:
    """`rotator worker --check`: 0 when a worker of this host recorded itself alive in the
    last few seconds (workers/health.py), else 1; 2 when the queue's store does not answer
    or refuses (BUSY …), in the line other commands print. Needs no master key, starts
    nothing."""
    import asyncio
    import dataclasses

    from rotator.embedded import SharedEmbedded
    from rotator.store.address import StoreAddress
    from rotator.store.connection import is_unavailable
    from workers import health
    from workers.settings import queue_url

    if settings.embedded:
        url = SharedEmbedded(settings.data_dir).running_url()
        if url is None:
            say(f"no worker: the embedded Valkey of {settings.data_dir.resolve()} is not running")
            return 1
        settings = dataclasses.replace(settings, redis_url=url)
    url = queue_url(settings)
    try:
        record = asyncio.run(health.check(url, settings.redis_timeout_ms / 1000))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        setting = "ROTATOR_QUEUE_URL" if settings.queue_url else "ROTATOR_REDIS_URL"
        raise unanswered(setting, StoreAddress.parse(url), exc) from None
    if record is None:
        say(f"no worker has recorded itself alive lately ({health.alive_key()} is absent)")
        return 1
    print(f"worker alive on this host: {record}")
    return 0


class StopRequest:
    """SIGINT/SIGTERM set a flag; `rotator run` then stops its children in order."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.requested = True


def base_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"


def _probe_context(url: str) -> ssl.SSLContext | None:
    """The health probe of our own API child over https: encrypted, not verified. It asks
    our child on this machine for /healthz, sends no credential, and the configured
    certificate need not name 127.0.0.1 (a real one names the public host)."""
    if not url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_healthy(url: str, children: list[Child], stop: StopRequest) -> bool:
    """Until /healthz answers; a child exiting meanwhile is fatal (a bad setting that only
    the child sees, a port taken since the check), not restarted."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    context = _probe_context(url)
    while time.monotonic() < deadline and not stop.requested:
        for child in children:
            code = child.exited()
            if code is not None:
                raise CliError(f"{child.name} exited with code {code} during start")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1, context=context) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    if stop.requested:
        return False
    raise CliError(f"the API did not answer {url}/healthz within {HEALTH_TIMEOUT_S:.0f}s")


async def _new_demo_tenant(redis: Any, durability: Any) -> str:
    """A new demo tenant's id, named `demo`, or `demo 2` … where the name is taken (tenant
    names are unique; a demo left by a crash, or the operator's own tenant, may hold it)."""
    from rotator.domain.errors import FieldConflict
    from rotator.store import tenants

    for n in range(1, 100):
        name = "demo" if n == 1 else f"demo {n}"
        try:
            created = await tenants.create_tenant(
                redis, durability, name=name, demo=True, now_ms=now_ms()
            )
        except FieldConflict:
            continue
        return created.id
    raise CliError("no free name for the demo tenant: demo … demo 99 are all taken")


async def prepare_demo(redis: Any, durability: Any, ring: KeyRing) -> tuple[str, bool, str]:
    """(demo tenant id, created now?, its client token): the hosted guide's demo token
    (GUIDE_DEMO_TOKEN, imported), or a fresh one of ours if another tenant holds that one."""
    from rotator.domain.errors import Conflict
    from rotator.store import keys, services, tenants

    created = False
    stored = await redis.get(keys.DEMO_TENANT)
    tenant = stored.decode() if stored else None
    if tenant is None or not await redis.exists(keys.tenant(tenant)):
        tenant = await _new_demo_tenant(redis, durability)
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
    try:
        issued = await tenants.issue_client_token(redis, durability, tenant, GUIDE_DEMO_TOKEN)
    except Conflict:
        say("the guide's demo token is another tenant's here; the demo gets a token of its own")
        issued = await tenants.issue_client_token(redis, durability, tenant)
    return tenant, created, issued.client_token


async def demo_admin(redis: Any, durability: Any, tenant: str) -> str:
    """A fresh admin token of the demo tenant, so `make run` can say how to sign in to the
    console (only hashes are stored: each run issues one; the previous one, and every
    console session signed in with it, ends)."""
    from rotator.store import tenants

    return (await tenants.issue_admin_token(redis, durability, tenant)).admin_token


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    stop = StopRequest()
    url = base_url(settings)
    exit_code = 0
    # before anything else: a second run on this data dir must change nothing (its demo
    # token would revoke the first run's), so the lock comes before the store is touched
    with RunLock(settings.data_dir, url):
        if not settings.embedded:
            check_reachable(settings)
        check_port(settings.host, settings.port)
        admin_token = settings.admin_token
        generated_admin = admin_token is None
        if admin_token is None:
            admin_token = secrets.token_urlsafe(32)
        with unlocked_store(settings, seals=True) as live:
            migrate_before_serving(live)  # before the demo tenant is written
            tenant, created, client_token = with_store(
                live, lambda r, d: prepare_demo(r, d, live.keyring)
            )
            demo_admin_token = with_store(live, lambda r, d: demo_admin(r, d, tenant))
            env = {
                **os.environ,
                "ROTATOR_REDIS_URL": live.redis_url or "",
                "ROTATOR_ADMIN_TOKEN": admin_token,
                "ROTATOR_DATA_DIR": str(Path(live.data_dir).resolve()),
            }
            children = [Child("API", "serve", env), Child("worker", "worker", env)]
            try:
                for child in children:
                    child.start()
                if wait_healthy(url, children, stop):
                    print_banner(
                        live, settings.embedded, url, admin_token, generated_admin, tenant,
                        created, client_token, demo_admin_token,
                    )  # fmt: skip
                gone = _store_watch(live) if settings.embedded else (lambda: False)
                while not stop.requested:
                    for child in children:
                        child.tend()  # a child that exited is restarted, with backoff
                    if gone():
                        # everything would answer 503 until someone noticed: say so and
                        # stop, so a process manager starts `run`, and it, again
                        say(
                            "the embedded Valkey has exited: stopping everything; start "
                            "`rotator run` again (its data is in its AOF, in the data dir)"
                        )
                        exit_code = 1
                        break
                    time.sleep(0.2)
            finally:
                for child in children:  # API first, then the worker, then Valkey
                    child.stop()
                if settings.embedded:
                    say("stopping the embedded Valkey")  # data_store's exit, right after this
    say("stopped")
    return exit_code


def _store_watch(live: Settings) -> Callable[[], bool]:
    """A check, at most once a second, that the embedded Valkey still listens on its port
    (refused: it exited; a slow or frozen one is not taken for dead)."""
    port = urlsplit(live.redis_url or "").port
    checked_at = time.monotonic()

    def gone() -> bool:
        nonlocal checked_at
        if port is None or time.monotonic() - checked_at < 1:
            return False
        checked_at = time.monotonic()
        return refused("127.0.0.1", port)

    return gone


def _trust_note(settings: Settings) -> list[str]:
    """With a `make dev-cert` certificate, how clients come to trust it."""
    if settings.tls_cert_file is None:
        return []
    ca = settings.tls_cert_file.parent / "ca.pem"
    if not ca.is_file():
        return []
    return [f"  export CURL_CA_BUNDLE={ca.resolve()}   # trusts the dev certificate"]


def print_banner(
    settings: Settings,
    embedded: bool,
    url: str,
    admin_token: str,
    generated_admin: bool,
    tenant: str,
    created: bool,
    client_token: str,
    demo_admin_token: str | None = None,
) -> None:
    store = (
        f"embedded Valkey, data in {Path(settings.data_dir).resolve()}"
        if embedded
        else redact(settings.redis_url or "")
    )
    # a token the operator chose is never printed: this output may go to a journal
    operator = (
        [f"  operator token:    {admin_token}",
         "                     (generated for this run; set ROTATOR_ADMIN_TOKEN to keep one)"]
        if generated_admin
        else ["  operator token:    the value of ROTATOR_ADMIN_TOKEN (not shown)"]
    )  # fmt: skip
    shown_token = admin_token if generated_admin else "$ROTATOR_ADMIN_TOKEN"
    stops = "the API, the worker and the store" if embedded else "the API and the worker"
    lines = [
        "",
        f"keyrotator is up on {url}  (Ctrl-C stops {stops})",
        f"  store:             {store}",
        *operator,
        f"  demo tenant:       {tenant}{' (created now)' if created else ''}",
        f"  demo client token: {client_token}",
        "                     (the hosted guide's demo token)"
        if client_token == GUIDE_DEMO_TOKEN
        else "                     (new for this run: the previous one is revoked)",
        *(
            [
                f"  demo admin token:  {demo_admin_token}",
                "                     (signs in to the console; new for this run too)",
            ]
            if demo_admin_token
            else []
        ),
        "",
        "Console (in your browser):",
        f"  {url}/app            sign in with the demo admin token above",
        f"  {url}/app/operator   the operator console: sign in with the operator token",
        "",
        "Try it:",
        *_trust_note(settings),
        f'  curl -s "{url}/v1/next?service={DEMO_SERVICE}&token={client_token}&mask=1"',
        *(
            [
                "  the hosted guide's demo line, with only the host changed:",
                f'  curl -s "{url}/keyrotator/api/next.php?service={DEMO_SERVICE}'
                f'&token={client_token}&mask=1"',
            ]
            if client_token == GUIDE_DEMO_TOKEN
            else []
        ),
        f'  curl -s -H "Authorization: Bearer {shown_token}" {url}/v1/admin/tenants',
        f"  API documentation: {url}/schema",
        "",
    ]
    print("\n".join(lines), flush=True)
