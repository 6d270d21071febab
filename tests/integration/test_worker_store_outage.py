"""The worker's parts while the data store is down and the queue is not (a cluster outage,
or the first moments of a single server's): jobs, the sweep, the pump.

The data store is a port nobody listens on; the queue is the test Valkey. Before, a
delivery job failed for good (its event lost), the sweep raised, and the pump logged a
traceback per pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import warnings

import pytest
import redis.asyncio as aioredis
from arq.worker import Worker

from rotator.embedded import free_port
from rotator.folded_log import FoldedWarning
from rotator.store import connection
from tests.integration.webhook_support import FAST, log_of, webhook_tenant, worker
from workers.deliver import DEFERRALS_KEY_PREFIX
from workers.pump import EventPump, arq_view, enqueue_batch
from workers.settings import worker_settings
from workers.sweep import sweep_time_services

pytestmark = pytest.mark.backends("single", "cluster")

OUTAGE_LOG = "test.outage"


@pytest.fixture
def down(settings, valkey):
    """The settings with the data store unreachable and the queue on the test Valkey."""
    return dataclasses.replace(
        settings,
        redis_url=f"redis://127.0.0.1:{free_port()}",
        redis_cluster=False,
        queue_url=valkey.url,
        redis_timeout_ms=300,
    )


@pytest.fixture
def outage() -> FoldedWarning:
    return FoldedWarning(logging.getLogger(OUTAGE_LOG), "the store", 60)


async def test_a_job_that_finds_the_store_down_keeps_its_attempts(
    settings, redis, valkey, receiver, down, outage, caplog
):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    event_id = f"evt_{t.tenant}_1-0"
    queue = aioredis.Redis.from_url(valkey.url)
    await enqueue_batch(queue, [(event_id, (t.tenant, event_id, "key.rotated", b"{}"))])
    config = dataclasses.replace(FAST, store_retry_s=0.01)

    # more runs than arq's old cap (webhook_max_attempts + 3) and than the attempts allowed
    deferred_runs = settings.webhook_max_attempts + 4
    # no cron jobs: a run straddling second 30 would also queue finish_tenant_deletions
    outage_worker = Worker(
        **{**worker_settings(down, config, outage=outage), "cron_jobs": []},
        burst=True, handle_signals=False, max_burst_jobs=deferred_runs,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger=OUTAGE_LOG):
        try:
            await outage_worker.async_run()
        finally:
            with warnings.catch_warnings():  # arq 0.28 closes its pool with a deprecated call
                warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
                await outage_worker.close()
    runs = outage_worker.jobs_retried
    assert runs >= deferred_runs - 1 and outage_worker.jobs_failed == 0
    assert [job.job_id for job in await arq_view(queue).queued_jobs()] == [event_id]
    assert await queue.get(DEFERRALS_KEY_PREFIX + event_id) == str(runs).encode()
    assert receiver.received == []
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # folded: one line
    assert outage.failures == runs

    async with worker(settings, config) as w:  # the store is back
        await w.async_run()
    assert await queue.exists(DEFERRALS_KEY_PREFIX + event_id) == 0  # gone with the job
    await queue.aclose()
    entries = await log_of(redis, t.tenant)
    assert [(e["event_id"], e["outcome"], e["attempts"]) for e in entries] == [
        (event_id, "delivered", 1)
    ]
    assert len(receiver.received) == 1


async def test_attempts_count_real_tries_only_across_deferrals(
    settings, redis, valkey, receiver, down, outage
):
    """A failed try (attempt 1), then runs that find the store down (deferrals), then a
    delivery: it is attempt 2, and the receiver saw two requests with one webhook-id."""
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    event_id = f"evt_{t.tenant}_1-0"
    queue = aioredis.Redis.from_url(valkey.url)
    await enqueue_batch(queue, [(event_id, (t.tenant, event_id, "key.rotated", b"{}"))])
    config = dataclasses.replace(FAST, store_retry_s=0.01)
    answers = [500, 200]
    receiver.respond = lambda _: answers.pop(0)

    async with worker(settings, config, max_burst_jobs=1) as w:  # attempt 1: HTTP 500
        await w.async_run()
    outage_worker = Worker(
        **{**worker_settings(down, config, outage=outage), "cron_jobs": []},
        burst=True, handle_signals=False, max_burst_jobs=3,
    )  # fmt: skip
    try:
        await outage_worker.async_run()
    finally:
        with warnings.catch_warnings():  # arq 0.28 closes its pool with a deprecated call
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await outage_worker.close()
    runs = outage_worker.jobs_retried
    assert runs >= 2 and outage_worker.jobs_failed == 0
    assert await queue.get(DEFERRALS_KEY_PREFIX + event_id) == str(runs).encode()
    async with worker(settings, config) as w:  # the store is back: attempt 2 delivers
        await w.async_run()
    await queue.aclose()

    entries = await log_of(redis, t.tenant)
    assert [(e["outcome"], e["attempts"]) for e in entries] == [("delivered", 2), ("retrying", 1)]
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]


async def test_the_sweep_stops_quietly_when_the_store_is_down(settings, down, outage, caplog):
    data = connection.connect(down)
    ctx = {"settings": down, "config": FAST, "data": data, "outage": outage}
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert await sweep_time_services(ctx) == 0
    await data.aclose()
    assert outage.failures == 3
    assert [(r.name, r.levelname) for r in caplog.records] == [(OUTAGE_LOG, "WARNING")]


async def test_the_pump_folds_its_failures(settings, valkey, down, outage, caplog):
    data = connection.connect(down)
    queue = aioredis.Redis.from_url(valkey.url)
    config = dataclasses.replace(FAST, pump_error_pause_s=0.01)
    pump = EventPump(data, queue, config, consumer="test-pump", outage=outage)
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(pump.run_forever())
        async with asyncio.timeout(20):
            while outage.failures < 5:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await data.aclose()
    await queue.aclose()
    problems = [(r.name, r.levelname) for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [(OUTAGE_LOG, "WARNING")]  # not a traceback per pass
