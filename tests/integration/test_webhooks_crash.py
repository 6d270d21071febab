"""A worker process killed (SIGKILL) in the middle of a delivery: after a restart the event
is still delivered, with the same webhook-id (at least once).

Real processes (`workers.run_worker`), a real receiver. The receiver holds the first
request open, the test kills the worker while it waits; arq's in-progress lock on the job
expires (the job's timeout + 10 s: the slowest test of the suite, ~13 s) and the
restarted worker runs the job again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rotator.cli.webhook_listen import Receiver
from tests.integration.webhook_support import log_of, record_event, verify_signature, webhook_tenant

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import json, sys
from pathlib import Path
from rotator.crypto import KeyRing
from rotator.settings import Settings
from workers import WorkerConfig, run_worker

cfg = json.loads(sys.argv[1])
settings = Settings(
    redis_url=cfg["redis_url"], data_dir=Path(cfg["data_dir"]),
    master_key=KeyRing.parse(cfg["master_key"]), webhook_allow_private=True,
    webhook_timeout_s=2.0, log_level="INFO",
)
run_worker(settings, WorkerConfig(
    job_timeout_margin_s=0.5, sweep_timeout_s=1.0, poll_delay_s=0.05, pump_idle_poll_s=0.05,
    claim_idle_ms=1000, claim_interval_s=0.5, backoff_base_s=0.1,
))
"""


def start_worker(settings, master_key_b64: str, log: Path) -> subprocess.Popen:
    cfg = {
        "redis_url": settings.redis_url,
        "data_dir": str(settings.data_dir),
        "master_key": master_key_b64,
    }
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(cfg)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


@pytest.mark.timeout(90)
async def test_worker_killed_mid_delivery_redelivers_same_id(
    settings, redis, master_key_b64, tmp_path
):
    release_first = asyncio.Event()
    attempts = 0

    async def respond(_):
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await release_first.wait()  # hold the first attempt open until the test ends
        return 200

    receiver = await Receiver(respond=respond).start()
    log = tmp_path / "worker.log"
    first = second = None
    try:
        t, secret = await webhook_tenant(redis, settings.keyring, receiver.url)
        event_id = await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

        first = start_worker(settings, master_key_b64, log)
        await receiver.wait_for(1)
        first.send_signal(signal.SIGKILL)  # mid-delivery: the POST is in flight
        first.wait()
        assert await log_of(redis, t.tenant) == []  # the attempt never finished

        second = start_worker(settings, master_key_b64, log)
        await receiver.wait_for(2, timeout_s=60)
        for _ in range(200):  # the job logs its attempt right after the response
            entries = await log_of(redis, t.tenant)
            if entries:
                break
            await asyncio.sleep(0.05)
    finally:
        release_first.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        await receiver.close()

    retry = receiver.received[1]
    assert receiver.received[0].headers["webhook-id"] == retry.headers["webhook-id"] == event_id
    assert receiver.received[0].body == retry.body
    assert verify_signature(secret, retry.headers, retry.body)
    assert [(e["event_id"], e["outcome"]) for e in entries] == [(event_id, "delivered")]
    assert entries[0]["attempts"] == 2  # arq counts the killed attempt
