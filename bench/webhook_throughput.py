"""Webhook pipeline throughput on loopback: events/s pumped, and pumped + delivered.

    python bench/webhook_throughput.py [--events 20000] [--workers 1 2]

Starts its own Valkey (bundled binary, AOF off), a receiver in this process (counting,
on uvloop), and `workers.run_worker` processes with production defaults
(BENCH_WORKER_CONFIG='{"max_jobs": 32}' overrides WorkerConfig fields). Also measures
what subscribing to key.delivered costs the delivery script (next_key.lua), server-side.

Measured on the 2-core development VM while other load ran (figures vary by +-30%):
pump alone ~35,000-60,000 events/s with its former one-script enqueue, 1,400-3,700
with arq's enqueue_job (since #13; workers/pump.py enqueue_batch has the interleaved
figures); pump + signed delivery ~450-1,100 events/s per
worker process (two processes on two busy cores did not add); next_key.lua 12.8-14.6 us
per EVALSHA unsubscribed, 14.5-18.9 us with key.delivered subscribed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rotator.cli.webhook_listen import Receiver  # noqa: E402
from rotator.crypto import KeyRing, aad_for_key, aad_for_webhook_secret  # noqa: E402
from rotator.domain import tokens  # noqa: E402
from rotator.domain.clock import system_clock  # noqa: E402
from rotator.embedded import EmbeddedValkey  # noqa: E402
from rotator.settings import Settings  # noqa: E402
from rotator.store import keys  # noqa: E402
from workers.config import WorkerConfig  # noqa: E402
from workers.pump import EventPump  # noqa: E402

WORKER = """
import json, sys
from pathlib import Path
from rotator.crypto import KeyRing
from rotator.settings import Settings
from workers import WorkerConfig, run_worker
cfg = json.loads(sys.argv[1])
run_worker(Settings(redis_url=cfg["url"], data_dir=Path(cfg["dir"]),
    master_key=KeyRing.parse(cfg["key"]), webhook_allow_private=True, log_level="WARNING"),
    WorkerConfig(**cfg["config"]))
"""


CONFIG = json.loads(os.environ.get("BENCH_WORKER_CONFIG", "{}"))


async def seed_tenant(r, ring: KeyRing, url: str, events: str) -> str:
    tid = tokens.new_tenant_id()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    await r.hset(
        keys.tenant(tid),
        mapping={
            "name": "bench",
            "demo": "0",
            "client": "x",
            "allow": "",
            "events": events,
            "wh_url": url,
            "wh_secret": ring.seal(secret.encode(), aad_for_webhook_secret(tid)),
        },
    )
    await r.sadd(keys.WEBHOOK_TENANTS, tid)
    return tid


async def fill(r, tenant: str, n: int) -> None:
    data = json.dumps({"service": "openai", "key_id": 1, "usage_today": 1, "app_id": None})
    for start in range(0, n, 1000):
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(min(1000, n - start)):
                pipe.xadd(keys.events(tenant), {"type": "key.delivered", "data": data})
            await pipe.execute()


async def pump_only(r, n: int) -> float:
    pump = EventPump(r, r, WorkerConfig(), consumer="bench")
    started = time.perf_counter()
    moved = 0
    while moved < n:
        moved += await pump.pump_once()
    return n / (time.perf_counter() - started)


async def end_to_end(r, server, ring, key_b64, tmp, n: int, workers: int) -> float:
    receiver = await Receiver().start()
    tenant = await seed_tenant(r, ring, receiver.url, ",key.delivered,")
    await fill(r, tenant, n)
    cfg = json.dumps({"url": server.url, "dir": str(tmp), "key": key_b64, "config": CONFIG})
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, cfg], cwd=ROOT) for _ in range(workers)
    ]
    try:
        await receiver.wait_for(n, timeout_s=600)
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        await receiver.close()
    return n / elapsed


async def script_cost(
    r, ring: KeyRing, settings: Settings, subscribed: bool, n: int
) -> tuple[float, float]:
    """(next_key calls/s from 64 concurrent callers, server usec per EVALSHA)."""
    from rotator.store.delivery import DeliveryStore

    tid = tokens.new_tenant_id()
    minted = tokens.mint_client(tid)
    await r.hset(
        keys.tenant(tid),
        mapping={
            "name": "b",
            "demo": "0",
            "client": minted.secret_hash,
            "allow": "",
            "events": ",key.delivered," if subscribed else "",
        },
    )
    svc = keys.service(tid, "openai")
    await r.hset(
        svc,
        mapping={
            "policy": "usage",
            "max": "",
            "ttl_ms": "",
            "ids": "1",
            "l:1": "k",
            "c:1": ring.seal(b"sk-x", aad_for_key(tid, "openai", 1)),
            "a:1": "1",
            "m:1": "",
        },
    )
    token = tokens.parse(minted.token)
    store = await DeliveryStore.open(settings, system_clock, fixed_clock=False)
    await r.config_resetstat()
    per = n // 64

    async def caller():
        for _ in range(per):
            await store.next_key(token, "openai", "")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(64)))
    rate = per * 64 / (time.perf_counter() - started)
    stats = await r.info("commandstats")
    await store.close()
    return rate, stats["cmdstat_evalsha"]["usec_per_call"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedValkey(Path(tmp) / "valkey", appendonly=False)
        server.start()
        key_b64 = base64.b64encode(os.urandom(32)).decode()
        ring = KeyRing.parse(key_b64)
        r = aioredis.Redis.from_url(server.url)
        try:
            settings = Settings(redis_url=server.url, data_dir=Path(tmp), master_key=ring)
            tenant = await seed_tenant(r, ring, "http://127.0.0.1:9/none", ",key.delivered,")
            await fill(r, tenant, args.events)
            print(
                f"pump only (read + enqueue + ack): {await pump_only(r, args.events):,.0f} events/s"
            )
            for w in args.workers:
                await r.flushall()
                rate = await end_to_end(r, server, ring, key_b64, Path(tmp), args.events, w)
                print(f"pump + signed delivery, {w} worker process(es): {rate:,.0f} events/s")
            for subscribed in (False, True):
                await r.flushall()
                rate, usec = await script_cost(r, ring, settings, subscribed, 64_000)
                label = "subscribed" if subscribed else "not subscribed"
                print(
                    f"next_key, key.delivered {label}: {rate:,.0f} calls/s, {usec:.1f} us/EVALSHA"
                )
        finally:
            await r.aclose()
            server.stop()


if __name__ == "__main__":
    import uvloop  # the receiver in this process must not be the bottleneck

    uvloop.run(main())
