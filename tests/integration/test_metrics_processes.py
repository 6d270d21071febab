"""`rotator serve` with ROTATOR_WORKERS uvicorn processes: one scrape, whichever process
answers it, counts every process's deliveries (prometheus-client's multi-process mode in
the directory serve prepares)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from rotator.domain import tokens
from rotator.embedded import free_port
from rotator.store import keys
from tests.conftest import OPERATOR_TOKEN
from tests.integration.cli_support import base_env
from tests.integration.metrics_support import AUTH, parse, value
from tests.integration.test_cli import alive, children_of
from tests.integration.test_multiprocess import stop, wait_http
from tests.lua import seed

pytestmark = pytest.mark.timeout(120)
DELIVERIES = 40


@pytest.mark.parametrize("workers", [1, 2])
async def test_one_scrape_counts_every_process(
    workers, valkey, master_key_b64, tmp_path, redis, settings
):
    t = await seed.tenant(redis)
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "openai", policy="usage", max_daily=10_000)
    await seed.key(redis, settings.keyring, t, "openai", "sk-proj-0123456789abcdefghijkl")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"a previous run's file")  # must go at start
    port = free_port()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_LOG_LEVEL="WARNING",
        ROTATOR_WORKERS=str(workers),
        ROTATOR_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    process = subprocess.Popen([sys.executable, "-m", "rotator.cli", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", process, "rotator serve")
        for _ in range(DELIVERIES):
            # a new connection each: the kernel spreads them over the processes
            r = httpx.get(url + "/v1/next", params={"service": "openai", "token": minted.token})
            assert r.status_code == 200
        deadline = time.monotonic() + 10
        while True:  # each process folds its counts once a second
            samples = parse(httpx.get(url + "/metrics", headers=AUTH).text)
            ok = value(samples, "rotator_deliveries_total", outcome="ok")
            if ok == DELIVERIES or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert ok == DELIVERIES
        assert value(samples, "rotator_api_processes") == workers
        assert value(samples, "rotator_delivery_duration_seconds_count") == DELIVERIES
        assert not (metrics_dir / "counter_1.db").exists()
        assert httpx.get(url + "/readyz").status_code == 200
    finally:
        stop(process)
    assert process.returncode == 0


@pytest.mark.backends("single")
def test_a_kill_9_of_serve_takes_its_worker_processes_with_it(valkey, master_key_b64, tmp_path):
    """Otherwise they would go on serving and hold the port: the restart a process manager
    makes after an out-of-memory kill would be refused."""
    port = free_port()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_LOG_LEVEL="WARNING",
        ROTATOR_WORKERS="2",
        ROTATOR_PORT=str(port),
    )
    process = subprocess.Popen([sys.executable, "-m", "rotator.cli", "serve"], env=env)
    children: list[int] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, "rotator serve")
        children = sorted(children_of(process.pid))
        assert children, "serve started no worker process"
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, "serve's worker processes outlived it"
            time.sleep(0.05)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # the port is free again
    finally:
        stop(process)
        for pid in children:  # whatever the outcome, none is left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
