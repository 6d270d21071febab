import logging

from rotator.api import errors


def test_outage_warnings_are_folded(monkeypatch, caplog):
    now = [1000.0]
    monkeypatch.setattr(errors.time, "monotonic", lambda: now[0])
    warner = errors._ThrottledWarning("store unavailable", interval_s=5)
    with caplog.at_level(logging.WARNING, logger="rotator.api"):
        for _ in range(1000):
            warner.warning()
        now[0] += 5
        warner.warning()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "store unavailable (0 more since the last report)",
        "store unavailable (999 more since the last report)",
    ]
