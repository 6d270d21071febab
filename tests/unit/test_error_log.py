"""The API folds its outage warnings: one line per 5 s however many 503s it answers."""

import logging

from rotator.folded_log import FoldedWarning


def test_outage_warnings_are_folded(caplog):
    now = [1000.0]
    warner = FoldedWarning(
        logging.getLogger("rotator.api"), "the store", 5, action="answering 503",
        clock=lambda: now[0],
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="rotator.api"):
        for _ in range(1000):
            warner.failed(ConnectionError("refused"))
        now[0] += 5
        warner.failed(ConnectionError("refused"))
        now[0] += 60  # quiet for longer than two intervals: the next failure is a new outage
        warner.failed(ConnectionError("refused"))
    lines = [r.getMessage() for r in caplog.records]
    first = (
        "the store is unreachable (ConnectionError: refused); answering 503, reporting once per 5s"
    )
    assert lines == [
        first,
        "the store is still unreachable after 5s (ConnectionError: refused); "
        "1000 failures folded into this report",
        first,
    ]
