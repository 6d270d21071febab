"""rotator/logs.py: the libraries' routine INFO lines become DEBUG; nothing else changes."""

from __future__ import annotations

import io
import logging
import logging.config
import os

import pytest

from rotator import logs


def record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("name", "msg", "args"),
    [
        ("arq.worker", "%6.2fs → %s(%s)%s", (0.1, "evt_1:deliver_event", "", "")),
        ("arq.worker", "%6.2fs ← %s ● %s", (0.1, "evt_1:deliver_event", "'delivered'")),
        ("arq.worker", "%6.2fs ↻ %s retrying job in %0.2fs", (0.1, "evt_1", 30.0)),
        ("arq.worker", "recording health: %s", ("Mar-01 j_complete=1",)),
        ("uvicorn.error", "Application startup complete.", ()),
        ("uvicorn.error", "Started server process [%d]", (12,)),
    ],
)
def test_routine_lines_are_debug(name, msg, args):
    at_info, at_debug = logs.Chatter("INFO"), logs.Chatter("DEBUG")
    assert at_info.filter(record(name, logging.INFO, msg, *args)) is False
    shown = record(name, logging.INFO, msg, *args)
    assert at_debug.filter(shown) is True
    assert (shown.levelno, shown.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.parametrize(
    ("name", "level", "msg"),
    [
        ("arq.worker", logging.WARNING, "%6.2fs ! %s max retries %d exceeded"),  # a failure
        ("arq.worker", logging.ERROR, "%6.2fs ! %s failed, %s: %s"),
        ("uvicorn.error", logging.INFO, "Child process [%d] died"),  # not routine
        ("workers", logging.INFO, "worker started: queue %s"),  # ours
        ("other", logging.INFO, "Application startup complete."),  # another logger
    ],
)
def test_everything_else_passes_unchanged(name, level, msg):
    kept = record(name, level, msg)
    assert logs.Chatter("INFO").filter(kept) is True
    assert kept.levelno == level


def test_the_config_sends_one_format_to_stderr_and_never_an_access_log(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    touched = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in touched]
    try:
        logging.config.dictConfig(logs.log_config("info"))
        logging.getLogger("arq.worker").info("%6.2fs → %s", 0.1, "job")
        logging.getLogger("uvicorn.access").info("GET /v1/next?token=krc_secret")
        logging.getLogger("workers").info("worker started")
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    finally:
        for lg, (handlers, level, propagate) in zip(touched, saved, strict=True):
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(f" INFO workers[{os.getpid()}]: worker started")
    assert " WARNING uvicorn.error[" in lines[1]
