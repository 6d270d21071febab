"""The worker's metrics: webhook attempts by outcome, the queue's depth and the oldest
unpumped event's age, exactly, after a scripted run; served on its own port."""

from __future__ import annotations

import warnings

import httpx
import pytest
from arq.worker import Worker

from rotator.embedded import free_port
from rotator.metrics.worker import WORKER, WorkerMetrics
from rotator.tally import Tally
from tests.integration.metrics_support import parse
from tests.integration.webhook_support import FAST, queue_fixture, record_event, webhook_tenant
from workers.pump import EventPump
from workers.settings import worker_settings

__all__ = ["queue_fixture"]  # a fixture of this module's tests

pytestmark = pytest.mark.backends("single", "cluster")


def sample(name: str, **labels: str) -> float:
    return WORKER.get_sample_value(name, labels) or 0.0


class Unclosed:
    """The test's own clients, lent to WorkerMetrics: its stop() must not close them."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    async def aclose(self) -> None:
        pass


async def test_a_scripted_webhook_run_is_counted_exactly(settings, redis, queue, receiver):
    receiver.respond = lambda _: 200  # type: ignore[method-assign]
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    first = await record_event(redis, t.tenant, "key.rotated", {"n": 1})
    await record_event(redis, t.tenant, "key.rotated", {"n": 2})
    created_ms = int(first.rsplit("_", 1)[1].split("-")[0])
    tally = Tally()
    metrics = WorkerMetrics(tally, Unclosed(redis), Unclosed(queue), lambda: created_ms + 5_000)
    before = {o: sample("rotator_webhook_attempts_total", outcome=o) for o in ("delivered",)}

    await metrics.read_backlog()  # two events recorded, none pumped yet
    assert sample("rotator_event_lag_seconds") == 5.0
    assert sample("rotator_queue_depth") == 0
    assert sample("rotator_worker_store_up") == 1

    await EventPump(redis, queue, FAST, consumer="metrics-test", tally=tally).pump_once()
    await metrics.read_backlog()
    assert sample("rotator_event_lag_seconds") == 0  # all handed to jobs
    assert sample("rotator_queue_depth") == 2

    kwargs = {
        **worker_settings(settings, FAST, tally=tally),
        "burst": True,
        "handle_signals": False,
        "cron_jobs": [],  # the sweep would count too, depending on the wall clock
    }
    w = Worker(**kwargs)
    try:
        await w.async_run()
    finally:
        with warnings.catch_warnings():
            # arq 0.28 closes its pool with redis-py's deprecated close(); not ours to fix
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await w.close()
    metrics.fold()
    await metrics.read_backlog()
    assert sample("rotator_queue_depth") == 0
    delivered = sample("rotator_webhook_attempts_total", outcome="delivered")
    assert delivered - before["delivered"] == 2
    # and the summary line still hears of them
    assert metrics.summary.take() == {"delivered": 2}


async def test_the_worker_serves_its_metrics_on_its_port(settings, redis, queue):
    metrics = WorkerMetrics(Tally(), Unclosed(redis), Unclosed(queue), lambda: 0)
    port = free_port()
    metrics.start("127.0.0.1", port)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert r.status_code == 200
        names = {name for name, _ in parse(r.text)}
        assert {"rotator_queue_depth", "rotator_event_lag_seconds"} <= names
    finally:
        await metrics.stop()
