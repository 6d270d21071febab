"""rotator/tally.py: counts taken once each, and the summary lines built from them."""

from __future__ import annotations

import asyncio
import logging

from rotator.tally import Summary, Tally, deliveries_line, jobs_line


def test_take_returns_the_counts_once_with_ok_first():
    tally = Tally()
    tally.ok += 3
    tally.add("invalid token")
    tally.add("no active keys", 2)
    assert tally.take() == {"ok": 3, "invalid token": 1, "no active keys": 2}
    assert list(tally.take()) == []  # started over
    tally.add("invalid token")
    assert tally.take() == {"invalid token": 1}  # no ok, no "ok 0"


def test_the_deliveries_line_names_outcomes_by_their_answers():
    line = deliveries_line({"ok": 7, "invalid token": 1, "service daily limit reached": 4}, 60.2)
    assert line == (
        "deliveries in the last 60s: 12 (ok 7, service daily limit reached 4, invalid token 1)"
    )
    assert deliveries_line({"invalid token": 2}, 60) == (
        "deliveries in the last 60s: 2 (ok 0, invalid token 2)"
    )
    assert deliveries_line({}, 60) is None  # nothing asked: no line


def test_the_jobs_line_always_has_the_main_counts_and_rare_ones_when_they_happened():
    assert jobs_line({"delivered": 3, "pumped": 3, "sweeps": 1}, 60) == (
        "jobs in the last 60s: webhooks 3 delivered, 0 retrying, 0 failed; 3 events pumped; "
        "1 sweep, 0 keys expired"
    )
    assert jobs_line({"failed": 1, "deferred": 2, "expired": 1, "pumped": 1}, 60) == (
        "jobs in the last 60s: webhooks 0 delivered, 0 retrying, 1 failed, 2 deferred; "
        "1 event pumped; 0 sweeps, 1 key expired"
    )
    assert jobs_line({}, 60) is None
    assert jobs_line({"delivered": 0}, 60) is None


async def test_summary_logs_each_period_and_the_partial_one_at_stop(caplog):
    now = [100.0]
    tally = Tally()
    summary = Summary(
        tally, deliveries_line, logging.getLogger("test.summary"), 0.01, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="test.summary"):
        summary.start()
        tally.ok += 2
        now[0] = 160.0
        while not caplog.records:  # the task's first period (0.01 s of the real loop)
            await asyncio.sleep(0.005)
        tally.add("invalid token")
        now[0] = 170.0
        await summary.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "deliveries in the last 60s: 2 (ok 2)"
    # periods with nothing counted logged nothing; the stop flushed the last one
    assert lines[1:] == ["deliveries in the last 10s: 1 (ok 0, invalid token 1)"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


async def test_a_zero_interval_never_logs_on_its_own_but_flushes_at_stop(caplog):
    tally = Tally()
    summary = Summary(tally, deliveries_line, logging.getLogger("test.summary"), 0)
    with caplog.at_level(logging.INFO, logger="test.summary"):
        summary.start()
        tally.ok += 1
        await asyncio.sleep(0.02)
        assert not caplog.records
        await summary.stop()
    assert [r.getMessage() for r in caplog.records] == ["deliveries in the last 0s: 1 (ok 1)"]
