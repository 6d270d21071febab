"""A real API process (`rotator serve`, real sockets) for tests that need a network peer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from rotator.embedded import free_port


@contextlib.contextmanager
def live_api(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Start `rotator serve` (which checks and marks the store, then runs uvicorn) as an
    operator would; yields its base URL."""
    port = free_port()
    env = {
        **env, "ROTATOR_HOST": "127.0.0.1", "ROTATOR_PORT": str(port),
        "ROTATOR_WORKERS": str(workers), "ROTATOR_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "rotator.cli", "serve"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("API did not come up")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def env_for(settings_url: str, master_key_b64: str, **extra: str) -> dict[str, str]:
    return {
        "ROTATOR_REDIS_URL": settings_url,
        "ROTATOR_MASTER_KEY": master_key_b64,
        **{f"ROTATOR_{k.upper()}": v for k, v in extra.items()},
    }
