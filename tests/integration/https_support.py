"""The shipped deployment's https, on loopback: `rotator serve` processes behind
deploy/nginx.conf as it ships (TLS on one port, health checks and redirects on another),
with a certificate from `make dev-cert` (rotator/devcert.py). Used by test_https.py and by
the migration guide's check (test_migration_guide.py)."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from rotator import devcert
from rotator.embedded import free_port
from rotator.settings import Settings
from tests.conftest import OPERATOR_TOKEN
from tests.integration.cli_support import base_env
from tests.integration.test_multiprocess import NginxTls, render_config, stop, wait_http


def trusting(ca: Path) -> ssl.SSLContext:
    """A client context that trusts `ca` alone, and checks names as usual."""
    return ssl.create_default_context(cafile=str(ca))


def wait_https(url: str, ca: Path, process: subprocess.Popen[bytes]) -> None:
    """Until `url` answers 200 over https verified against `ca`."""
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, verify=trusting(ca)).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up (exit code {process.poll()})")
        time.sleep(0.05)


@dataclass(frozen=True)
class Certificate:
    ca: Path
    cert: Path
    key: Path


def dev_certificate(directory: Path) -> Certificate:
    """What `make dev-cert` writes (for localhost, 127.0.0.1 and ::1)."""
    return Certificate(*devcert.make(directory))


@dataclass(frozen=True)
class HttpsStack:
    https_url: str
    """https://localhost:<port>: nginx's TLS server (the certificate names localhost)."""
    http_url: str
    """http://127.0.0.1:<port>: nginx's plain server (health checks, redirects)."""
    certificate: Certificate
    env: dict[str, str]
    """The API's environment: what a `rotator` command needs to reach the same store."""


def store_env(settings: Settings, master_key_b64: str, data_dir: Path) -> dict[str, str]:
    """The environment of a `rotator` process on the test backend's store."""
    env = base_env(
        ROTATOR_REDIS_URL=settings.redis_url or "",
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        ROTATOR_DATA_DIR=str(data_dir),
        ROTATOR_LOG_LEVEL="WARNING",
        ROTATOR_WORKERS="1",
    )
    if settings.redis_cluster:
        env.update(ROTATOR_REDIS_CLUSTER="1", ROTATOR_QUEUE_URL=settings.queue_url or "")
    return env


@contextmanager
def https_stack(
    nginx_binary: str, settings: Settings, master_key_b64: str, workdir: Path, apis: int = 1
) -> Iterator[HttpsStack]:
    certificate = dev_certificate(workdir / "tls")
    env = store_env(settings, master_key_b64, workdir)
    env["ROTATOR_TRUSTED_PROXIES"] = "127.0.0.1/32"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ports = [free_port() for _ in range(apis)]
        for port in ports:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "rotator.cli", "serve"],
                    env={**env, "ROTATOR_PORT": str(port)},
                    stdin=subprocess.DEVNULL,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            wait_http(f"http://127.0.0.1:{port}/healthz", process, "rotator serve")
        https_port, http_port = free_port(), free_port()
        config = render_config(
            workdir, https_port, ports, NginxTls(http_port, certificate.cert, certificate.key)
        )
        nginx = subprocess.Popen(
            [nginx_binary, "-p", str(workdir), "-c", str(config), "-e",
             str(workdir / "error.log")],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(nginx)
        wait_https(f"https://localhost:{https_port}/healthz", certificate.ca, nginx)
        yield HttpsStack(
            https_url=f"https://localhost:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            certificate=certificate,
            env=env,
        )
    finally:
        for process in processes:
            stop(process)
