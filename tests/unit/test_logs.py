"""rotator/logs.py: the libraries' routine INFO lines become DEBUG; nothing else changes."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os

import pytest

from rotator import logs, request_scope
from rotator.folded_log import FoldedWarning


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


def _formatted(log_format: str, *, scope: object = None, exc: bool = False) -> str:
    """One record through the configured handler's filters and formatter."""
    config = logs.log_config("info", log_format)
    formatter = logs.JsonLines() if log_format == "json" else logging.Formatter(logs.FORMAT)
    assert config["formatters"]["plain"] == (
        {"()": "rotator.logs.JsonLines"} if log_format == "json" else {"format": logs.FORMAT}
    )
    assert "scope" in config["handlers"]["stderr"]["filters"]
    rec = record("rotator.api", logging.WARNING, "store %s", "down")
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            rec.exc_info = sys.exc_info()
    token = request_scope.open_scope(scope) if scope is not None else None
    try:
        logs.Scope().filter(rec)
    finally:
        if token is not None:
            request_scope.close_scope(token)
    return formatter.format(rec)


def test_text_lines_name_the_request_and_tenant_when_there_is_one():
    scope = request_scope.RequestScope(request_id="ab12cd34-7", tenant="t0000000000000001")
    line = _formatted("text", scope=scope)
    assert line.endswith("store down [request_id=ab12cd34-7 tenant=t0000000000000001]")
    assert _formatted("text").endswith(f"rotator.api[{os.getpid()}]: store down")


def test_json_lines_are_one_object_with_the_scope():
    scope = request_scope.RequestScope(request_id="ab12cd34-7", tenant="t0000000000000001")
    line = _formatted("json", scope=scope, exc=True)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and parsed["logger"] == "rotator.api"
    assert parsed["message"] == "store down" and parsed["process"] == os.getpid()
    assert parsed["request_id"] == "ab12cd34-7" and parsed["tenant"] == "t0000000000000001"
    assert parsed["time"].endswith("Z") and "ValueError: boom" in parsed["exception"]
    outside = json.loads(_formatted("json"))
    assert "request_id" not in outside and "tenant" not in outside


def test_the_log_format_setting_is_checked():
    from rotator.settings import Settings, SettingsError

    assert Settings.from_env({"ROTATOR_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="ROTATOR_LOG_FORMAT"):
        Settings.from_env({"ROTATOR_LOG_FORMAT": "xml"})


def test_a_folded_outage_line_names_no_request(caplog):
    """A folded line speaks for every request that failed: the one that happened to write
    it is not named (its id would send an operator to the wrong request)."""
    scope = request_scope.RequestScope(request_id="ab12cd34-7", tenant="t0000000000000001")
    folded = FoldedWarning(logging.getLogger("rotator.api"), "the store", 60)
    token = request_scope.open_scope(scope)
    try:
        with caplog.at_level(logging.INFO, logger="rotator.api"):
            folded.failed(ConnectionError("refused"))
            folded.recovered()
        assert len(caplog.records) == 2
        for rec in caplog.records:
            logs.Scope().filter(rec)  # as the handler does, while the request is served
            assert (rec.request_id, rec.tenant, rec.scope) == (None, None, "")
    finally:
        request_scope.close_scope(token)
