"""The worker's supervisor: a Worker loop that fails for any reason is replaced, the
process stays up (a WatchError raised by arq's job pick-up once killed the worker); one
that failed because the store went away is an outage, logged as one, with no traceback."""

from __future__ import annotations

import asyncio
import gc
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from workers import supervisor as supervision
from workers.config import WorkerConfig


class FlakyWorker:
    """Stands in for arq's Worker: the first run fails as arq's loop did, the second runs
    until the supervisor stops it."""

    runs = 0
    lost_store = False

    def __init__(self, **_: object) -> None:
        self.ctx: dict = {}
        self.tasks: dict = {}
        self.pool = None
        self.health_check_key = "health"
        self.stopped = asyncio.Event()

    async def async_run(self) -> None:
        FlakyWorker.runs += 1
        if FlakyWorker.runs == 1 and FlakyWorker.lost_store:
            try:
                raise RedisConnectionError("Connection reset by peer")
            except RedisConnectionError:
                # what redis-py raises when a watching connection dies
                raise WatchError("A ConnectionError occurred on while watching") from None
        if FlakyWorker.runs == 1:
            raise WatchError("Watched variable changed.")
        await self.stopped.wait()

    def handle_sig(self, _signum: int) -> None:
        self.stopped.set()


async def run_until_replaced(settings, monkeypatch, caplog, *, lost_store: bool) -> None:
    monkeypatch.setattr(supervision, "Worker", FlakyWorker)
    FlakyWorker.runs = 0
    FlakyWorker.lost_store = lost_store
    config = WorkerConfig(pump=False, reconnect_base_s=0.01, reconnect_cap_s=0.01)
    boss = supervision.Supervisor(settings, config)
    with caplog.at_level(logging.INFO, logger="workers"):
        running = asyncio.create_task(boss.run())
        for _ in range(500):
            if FlakyWorker.runs == 2 and boss.current is not None:
                break
            await asyncio.sleep(0.01)
        assert FlakyWorker.runs == 2 and not running.done()
        boss.stop()
        await asyncio.wait_for(running, 5)


async def test_a_failed_worker_loop_is_replaced_not_fatal(settings, monkeypatch, caplog):
    await run_until_replaced(settings, monkeypatch, caplog, lost_store=False)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["the worker loop failed; starting a new one"]


async def test_a_worker_loop_ended_by_a_lost_connection_is_an_outage(settings, monkeypatch, caplog):
    await run_until_replaced(settings, monkeypatch, caplog, lost_store=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the store is unreachable (ConnectionError: Connection reset by peer); "
        "retrying with backoff, reporting once per 60s"
    ]


class BrokenPool:
    """A queue pool whose health-key delete fails with an error that is no outage."""

    async def delete(self, *_: object) -> None:
        raise RuntimeError("not an outage")

    async def aclose(self) -> None:
        BrokenPool.closed = True


async def test_a_failed_worker_closed_in_the_background_logs_what_failed(
    settings, monkeypatch, caplog
):
    monkeypatch.setattr(FlakyWorker, "__init__", _with_broken_pool(FlakyWorker.__init__))
    BrokenPool.closed = False
    await run_until_replaced(settings, monkeypatch, caplog, lost_store=False)
    gc.collect()  # an exception nobody retrieved is reported when its task is collected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "the worker loop failed; starting a new one",
        *["closing a worker: dropping its health key failed"] * 2,  # the failed, the stopped
    ]
    assert BrokenPool.closed  # the steps after the failed one still ran


def _with_broken_pool(init):
    def __init__(self, **kwargs: object) -> None:
        init(self, **kwargs)
        self.pool = BrokenPool()

    return __init__
