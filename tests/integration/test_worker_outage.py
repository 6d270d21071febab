"""A worker process rides out a Valkey outage: kill -9, restart on the same port and data.

Real processes: `workers.run_worker` in a subprocess, an EmbeddedValkey with AOF on, a
real receiver. Before e1a71c5's successor the worker exited with ConnectionError on its
first poll after the kill, and nothing delivered events again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from rotator.crypto import KeyRing
from rotator.embedded import EmbeddedValkey
from rotator.store import keys
from rotator.store.events import GROUP
from tests.integration.webhook_support import webhook_tenant

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
    webhook_timeout_s=2.0, log_level="INFO", redis_timeout_ms=500,
)
run_worker(settings, WorkerConfig(
    job_timeout_margin_s=0.5, sweep_timeout_s=1.0, poll_delay_s=0.05, pump_idle_poll_s=0.05,
    pump_error_pause_s=0.05, claim_idle_ms=1000, claim_interval_s=0.2, backoff_base_s=0.1,
    reconnect_base_s=0.05, reconnect_cap_s=0.2, outage_report_interval_s=60.0,
))
"""


def start_worker(redis_url: str, data_dir: Path, master_key_b64: str, log: Path):
    cfg = {"redis_url": redis_url, "data_dir": str(data_dir), "master_key": master_key_b64}
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(cfg)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


async def wait_for_log(log: Path, text: str, timeout_s: float = 20.0) -> str:
    """The log once it contains `text` (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{content}"
        await asyncio.sleep(0.05)


async def wait_for_ids(receiver, wanted: set[str], timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not wanted <= {r.headers["webhook-id"] for r in receiver.received}:
            await receiver.wait_for(len(receiver.received) + 1, timeout_s)


@pytest.mark.timeout(120)
async def test_worker_survives_a_valkey_kill_and_delivers_what_was_pending(
    tmp_path, master_key_b64, receiver
):
    server = EmbeddedValkey(tmp_path / "valkey", appendonly=True)
    server.start()
    r = aioredis.Redis.from_url(server.url)
    log = tmp_path / "worker.log"
    worker = None
    try:
        t, _ = await webhook_tenant(r, KeyRing.parse(master_key_b64), receiver.url)
        stream = keys.events(t.tenant)
        first = await r.xadd(stream, {"type": "key.rotated", "data": '{"n":0}'})
        worker = start_worker(server.url, tmp_path, master_key_b64, log)
        await wait_for_ids(receiver, {f"evt_{t.tenant}_{first.decode()}"})  # up, group made

        # an event a pump read and never acknowledged (it died with the store): recorded
        # and read in one transaction, so the live pump cannot take it first
        async with r.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, {"type": "key.rotated", "data": '{"n":1}'})
            pipe.xreadgroup(GROUP, "dead-pump", {stream: ">"}, count=1)
            pending_id, _ = await pipe.execute()
        await r.execute_command("WAITAOF", 1, 0, 2000)  # on disk before the kill
        assert (await r.xpending(stream, GROUP))["pending"] == 1
        await r.aclose()

        server.kill()
        await wait_for_log(log, "the store is unreachable")
        await asyncio.sleep(1.5)  # the outage lasts: many polls and reconnects fail meanwhile
        assert worker.poll() is None, log.read_text()
        server.start()  # same port, same data dir (AOF)

        r = aioredis.Redis.from_url(server.url)
        after = await r.xadd(stream, {"type": "key.rotated", "data": '{"n":2}'})
        wanted = {f"evt_{t.tenant}_{i.decode()}" for i in (pending_id, after)}
        await wait_for_ids(receiver, wanted)
        content = await wait_for_log(log, "reachable again")
        assert worker.poll() is None  # never exited

        outage_lines = [line for line in content.splitlines() if "unreachable" in line]
        assert len(outage_lines) == 1, content  # one report per 60 s: folded, not per poll
        recovered = next(line for line in content.splitlines() if "reachable again" in line)
        failures = int(recovered.split(" and ")[1].split(" failures")[0])
        assert failures >= 5, recovered  # each ping, pump pass and poll failed in there
        assert "Traceback" not in content
        assert (await r.xpending(stream, GROUP))["pending"] == 0  # all acknowledged
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
        await r.aclose()
        server.stop()
    assert worker.returncode == 0
