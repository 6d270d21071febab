"""serve, worker and run: the service's processes, and `make run`'s orchestration."""

from __future__ import annotations

import argparse
import copy
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rotator.cli.common import (
    CliError,
    check_reachable,
    data_store,
    ensure_master_key,
    now_ms,
    redact,
    say,
    with_store,
)
from rotator.crypto import KeyRing
from rotator.settings import Settings

DEMO_SERVICE = "openai"
STOP_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 60.0


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


async def demo_admin(redis: Any, durability: Any, tenant: str) -> str:
    """A fresh admin token of the demo tenant, so `make run` can say how to sign in to the
    console (only hashes are stored: each run issues one; the previous one, and every
    console session signed in with it, ends)."""
    from rotator.store import tenants

    return await tenants.issue_admin_token(redis, durability, tenant)


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
        demo_admin_token = with_store(live, lambda r, d: demo_admin(r, d, tenant))
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
                    client_token, demo_admin_token,
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
    demo_admin_token: str | None = None,
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
        f'  curl -s "{url}/v1/next?service={DEMO_SERVICE}&token={client_token}&mask=1"',
        f'  curl -s -H "Authorization: Bearer {admin_token}" {url}/v1/admin/tenants',
        f"  API documentation: {url}/schema",
        "",
    ]
    print("\n".join(lines), flush=True)
