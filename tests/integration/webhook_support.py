"""Helpers of the webhook tests: a tenant pointed at a receiver, events, an in-process worker.

`verify_signature` is an independent implementation of the Standard Webhooks scheme
(written from the spec, sharing no code with workers/signing.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import warnings
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq.worker import Worker

from rotator.crypto import KeyRing, aad_for_webhook_secret
from rotator.settings import Settings
from rotator.store import keys
from tests.lua import seed
from workers.config import WorkerConfig
from workers.pump import EventPump
from workers.settings import worker_settings

FAST = WorkerConfig(
    pump=False,
    backoff_base_s=0.01,
    backoff_cap_s=0.05,
    claim_idle_ms=0,
    claim_interval_s=0,
    poll_delay_s=0.01,
    pump_idle_poll_s=0.01,
    pump_batch=100,
    target_cache_s=0,
)
"""Tiny intervals: tests wait on events, never on timers."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.split("_", 1)[1])
    content = (
        headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode() + b"." + body
    )
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    versions = dict(sig.split(",", 1) for sig in headers["webhook-signature"].split(" "))
    return hmac.compare_digest(versions.get("v1", ""), expected)


async def webhook_tenant(
    redis, keyring: KeyRing, url: str, *, secret: str | None = None, events: str | None = None
) -> tuple[seed.Seeded, str]:
    """A tenant with a webhook at `url` (registered for the pump); returns it and its secret."""
    secret = secret or new_secret()
    t = await seed.tenant(redis, **({"events": events} if events is not None else {}))
    await redis.hset(
        keys.tenant(t.tenant),
        mapping={
            "wh_url": url,
            "wh_secret": keyring.seal(secret.encode(), aad_for_webhook_secret(t.tenant)),
        },
    )
    await redis.sadd(keys.WEBHOOK_TENANTS, t.tenant)
    return t, secret


async def record_event(redis, tenant: str, event_type: str, data: dict[str, Any]) -> str:
    """XADD in the documented format (what the scripts write); returns the event id."""
    entry_id = await redis.xadd(keys.events(tenant), {"type": event_type, "data": json.dumps(data)})
    return f"evt_{tenant}_{entry_id.decode()}"


@pytest.fixture(name="queue")
async def queue_fixture(backend, redis, valkey):
    """The arq queue's Redis (import it as a fixture): the data store on "single", the plain
    Valkey on "cluster" (as ROTATOR_QUEUE_URL has it)."""
    if backend == "single":
        yield redis
        return
    client = aioredis.Redis.from_url(valkey.url)
    yield client
    await client.aclose()


def pump(
    redis, config: WorkerConfig = FAST, consumer: str = "test-pump", *, queue=None
) -> EventPump:
    """A pump of the data store `redis`; its jobs go to `queue` (default: `redis` too)."""
    return EventPump(redis, queue or redis, config, consumer=consumer)


@asynccontextmanager
async def worker(settings: Settings, config: WorkerConfig = FAST, **overrides: Any):
    """An arq Worker in this process (burst: `await w.async_run()` returns when the queue is
    empty, deferred retries included). Without its cron jobs unless a test asks for them:
    a run that happens to straddle a minute would otherwise also run the sweep and the
    deletions job, and counts of jobs run would depend on the wall clock."""
    kwargs = {
        **worker_settings(settings, config),
        "burst": True,
        "handle_signals": False,
        "cron_jobs": [],
    }
    kwargs.update(overrides)
    w = Worker(**kwargs)
    try:
        yield w
    finally:
        with warnings.catch_warnings():
            # arq 0.28 closes its pool with redis-py's deprecated close(); not ours to fix
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await w.close()


async def deliver_all(settings: Settings, redis, config: WorkerConfig = FAST) -> int:
    """Pump every stream once, then run the queued jobs to completion; returns jobs run."""
    await pump(redis, config).pump_once()
    async with worker(settings, config) as w:
        await w.async_run()
        return w.jobs_complete + w.jobs_failed


async def log_of(redis, tenant: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in await redis.lrange(keys.deliveries(tenant), 0, -1)]
