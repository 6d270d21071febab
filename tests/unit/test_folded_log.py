"""FoldedWarning: one line per interval for a repeating failure, with the count folded."""

from __future__ import annotations

import logging

from rotator.folded_log import FoldedWarning


def test_first_failure_then_one_report_per_interval_then_recovery(caplog):
    now = [1000.0]
    folded = FoldedWarning(logging.getLogger("test.folded"), "the store", 60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.folded"):
        for _ in range(500):  # a poll every 0.1 s for 50 s
            folded.failed(ConnectionError("refused"))
            now[0] += 0.1
        now[0] = 1060.0
        folded.failed(ConnectionError("refused"))  # 60 s after the first: a report
        folded.failed(ConnectionError("refused"))
        now[0] += 5
        folded.recovered()
        folded.recovered()  # nothing more: it is not failing
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "the store is unreachable (ConnectionError: refused); retrying with "
                    "backoff, reporting once per 60s"),
        ("WARNING", "the store is still unreachable after 60s (ConnectionError: refused); "
                    "500 failures folded into this report"),
        ("INFO", "the store is reachable again after 65.0s and 502 failures"),
    ]  # fmt: skip
    assert not folded.failing


def test_a_new_outage_is_reported_at_once(caplog):
    now = [0.0]
    folded = FoldedWarning(logging.getLogger("test.folded"), "the store", 60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.folded"):
        folded.failed(TimeoutError())
        folded.recovered()
        now[0] += 1
        folded.failed(TimeoutError())
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and messages[2].startswith("the store is unreachable (TimeoutError)")
