"""`rotator worker --check`, the worker container's health check, against real processes.

A worker records itself alive on its host's key (arq's health check); the check reads
it: 0 while a worker runs here, 1 once none does (stopped: at once; killed: within the
record's lifetime), 2 when the queue's store does not answer.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rotator.embedded import EmbeddedValkey
from tests.integration.cli_support import base_env, rotator

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]

# what `rotator worker` runs, recording itself alive every 0.2 s instead of 5 s
WORKER = """
from rotator.settings import Settings
from workers import WorkerConfig, run_worker

run_worker(Settings.from_env(), WorkerConfig(health_check_interval_s=0.2))
"""


async def until_check_says(code: int, env: dict[str, str], timeout_s: float = 20.0):
    """`rotator worker --check` until it exits `code` (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = rotator("worker", "--check", env=env)
        if result.returncode == code:
            return result
        assert time.monotonic() < deadline, (result.returncode, result.stdout, result.stderr)
        await asyncio.sleep(0.2)


@pytest.fixture
def store(tmp_path):
    server = EmbeddedValkey(tmp_path / "valkey", appendonly=False)
    server.start()
    yield server
    server.stop()


def worker_env(store: EmbeddedValkey, tmp_path: Path, master_key_b64: str) -> dict[str, str]:
    return base_env(
        ROTATOR_REDIS_URL=store.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )


async def test_alive_while_running_and_not_once_stopped(store, tmp_path, master_key_b64):
    env = worker_env(store, tmp_path, master_key_b64)
    # the check needs no master key: only the queue's address
    check_env = {k: v for k, v in env.items() if k != "ROTATOR_MASTER_KEY"}
    none = rotator("worker", "--check", env=check_env)
    assert none.returncode == 1, none.stderr
    assert none.stderr.startswith("rotator: no worker has recorded itself alive lately")

    worker = subprocess.Popen([sys.executable, "-m", "rotator.cli", "worker"], env=env)
    try:
        alive = await until_check_says(0, check_env)
        assert alive.stdout.startswith("worker alive on this host: ")
        assert "j_complete=" in alive.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    # a stopped worker takes its record with it
    assert rotator("worker", "--check", env=check_env).returncode == 1


async def test_a_killed_worker_stops_being_alive(store, tmp_path, master_key_b64):
    env = worker_env(store, tmp_path, master_key_b64)
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env)
    try:
        await until_check_says(0, env)
    finally:
        worker.kill()
        worker.wait(10)
    await until_check_says(1, env, timeout_s=10)  # the record expires 1.2 s after its last write


def test_an_unreachable_queue_is_exit_2(tmp_path, master_key_b64):
    env = base_env(ROTATOR_REDIS_URL="redis://127.0.0.1:1/0", ROTATOR_DATA_DIR=str(tmp_path),
                   ROTATOR_REDIS_TIMEOUT_MS="300")  # fmt: skip
    result = rotator("worker", "--check", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("rotator: ROTATOR_REDIS_URL: redis://127.0.0.1:1/0 does not ")
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_embedded_mode_starts_nothing(tmp_path):
    result = rotator("worker", "--check", env=base_env(ROTATOR_DATA_DIR=str(tmp_path)))
    assert result.returncode == 1
    assert "the embedded Valkey of" in result.stderr and "is not running" in result.stderr
    assert not (tmp_path / "valkey.port").exists() and not (tmp_path / "master.key").exists()
