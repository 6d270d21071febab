"""The worker's parts on a store that is up but refuses (BUSY: a script past
busy-reply-threshold; READONLY: demoted to a replica): an outage like a lost connection,
folded into one warning and retried, never an ERROR traceback (rotator/store/refusals.py).

Each test runs its own Valkey: a busy script or REPLICAOF would disturb the shared one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging

import pytest
import redis.asyncio as aioredis

from rotator.folded_log import FoldedWarning
from rotator.metrics.worker import WorkerMetrics, store_up
from rotator.store import connection, keys
from rotator.tally import Tally
from tests.integration.refusing_store import busy, demoted
from tests.integration.webhook_support import FAST
from workers import supervisor as supervision
from workers.deletions import finish_tenant_deletions
from workers.pump import EventPump
from workers.sweep import sweep_time_services

OUTAGE_LOG = "test.outage"


@pytest.fixture
def on_server(settings, own_valkey):
    return dataclasses.replace(
        settings,
        redis_url=own_valkey.url,
        redis_cluster=False,
        queue_url=None,
        redis_timeout_ms=2000,
    )


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("refusing", [busy, demoted], ids=["busy", "demoted"])
async def test_the_pump_folds_a_refusing_store(settings, own_valkey, caplog, refusing):
    data = aioredis.Redis.from_url(own_valkey.url)
    await data.sadd(keys.WEBHOOK_TENANTS, "t1")  # its XGROUP CREATE is a write: READONLY
    outage = FoldedWarning(logging.getLogger(OUTAGE_LOG), "the store", 60)
    config = dataclasses.replace(FAST, pump_error_pause_s=0.01)
    pump = EventPump(data, data, config, consumer="test-pump", outage=outage)
    with caplog.at_level(logging.INFO):
        async with refusing(own_valkey, 2):
            task = asyncio.create_task(pump.run_forever())
            async with asyncio.timeout(10):
                while outage.failures < 5:
                    await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    await data.aclose()
    assert not errors(caplog)
    problems = [(r.name, r.levelname) for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [(OUTAGE_LOG, "WARNING")]


async def test_worker_metrics_count_a_busy_store_as_down(on_server, own_valkey):
    data = connection.connect(on_server)
    queue = aioredis.Redis.from_url(own_valkey.url)
    metrics = WorkerMetrics(Tally(), data, queue, lambda: 0)
    await metrics.read_backlog()
    assert store_up._value.get() == 1
    async with busy(own_valkey, 1.5):
        await metrics.read_backlog()  # raised BUSY: "metrics: reading … failed" + traceback
        assert store_up._value.get() == 0
    await data.aclose()
    await queue.aclose()


async def test_the_supervisor_rides_out_a_busy_store(on_server, own_valkey, caplog):
    """BUSY before the first Worker (its PING) and while one runs (its poll loop, then the
    close of the failed Worker): one folded warning, a new Worker once the script ends."""
    config = dataclasses.replace(
        FAST, reconnect_base_s=0.05, reconnect_cap_s=0.1, outage_report_interval_s=60
    )
    boss = supervision.Supervisor(on_server, config)
    with caplog.at_level(logging.INFO):
        async with busy(own_valkey, 1.5):
            running = asyncio.create_task(boss.run())
            async with asyncio.timeout(10):
                while boss.outage.failures < 2:
                    await asyncio.sleep(0.01)
            assert not running.done()
        async with asyncio.timeout(10):
            while boss.outage.failing or boss.current is None:  # recovered: a Worker runs
                await asyncio.sleep(0.01)
        worker = boss.current
        async with busy(own_valkey, 1.5):  # the running Worker's loop meets BUSY
            async with asyncio.timeout(10):
                while boss.current is worker:
                    await asyncio.sleep(0.01)
        async with asyncio.timeout(10):
            while boss.outage.failing or boss.current is None or boss._draining:
                await asyncio.sleep(0.01)
        boss.stop()
        await asyncio.wait_for(running, 10)
        gc.collect()  # a failed task nobody retrieved is reported when collected
    assert not errors(caplog)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("BUSY" in w for w in warnings), warnings


async def test_the_sweep_and_deletions_stop_quietly_on_a_busy_store(on_server, own_valkey, caplog):
    data = connection.connect(on_server)
    outage = FoldedWarning(logging.getLogger(OUTAGE_LOG), "the store", 60)
    ctx = {"settings": on_server, "config": FAST, "data": data, "outage": outage}
    with caplog.at_level(logging.INFO):
        async with busy(own_valkey, 1.5):
            assert await sweep_time_services(ctx) == 0
            assert await finish_tenant_deletions(ctx) == 0
    await data.aclose()
    assert outage.failures == 2
    assert not errors(caplog)
