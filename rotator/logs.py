"""How `rotator serve` and `rotator worker` log: one format, one level, the chatter at DEBUG.

At INFO an operator sees what to act on or to know: each process's start and stop
(address, store, worker count), store outages (folded, rotator/folded_log.py), webhook
events that failed for good, and one summary line a minute of deliveries or jobs
(rotator/tally.py). What happens per request, per job or per sweep is DEBUG.

uvicorn and arq log their own routine at INFO: a line per job start and finish, per
health record, per process start and lifespan step. Their loggers stay at our level
(their warnings and errors must get through), and `Chatter`, a filter on our one
handler, relabels those known routine lines as DEBUG: shown at DEBUG, dropped above it.
Matching is by the library's format string (`record.msg`, before arguments): a line a
new library version adds is shown, not hidden.

Two formats (ROTATOR_LOG_FORMAT): `text`, readable lines, and `json`, one object a line for
log shippers (`time`, `level`, `logger`, `message`, `process`, and `request_id` and
`tenant` when a request or command is being served). `Scope`, a filter on the handler, adds
the request's id and tenant to every record from the request scope (rotator/request_scope.py),
so a line says which request caused it in either format. No secret is ever a log argument;
the formats add nothing but the scope's id and tenant.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from rotator import request_scope
from rotator.domain.clock import iso_ms

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s%(scope)s"
"""The text format: `scope` is ` [request_id=… tenant=…]` while a request is served, else ''."""

ROUTINE: dict[str, tuple[str, ...]] = {
    # per process start/stop and lifespan steps; `rotator serve` says start and stop itself
    "uvicorn.error": (
        "Started server process",
        "Waiting for application startup.",
        "Application startup complete.",
        "Waiting for application shutdown.",
        "Application shutdown complete.",
        "Finished server process",
        "Started parent process",
        "Stopping parent process",
        "Waiting for child process",
        "Terminated child process",
        "Uvicorn running on",
        "Shutting down",
        "Received SIGINT",
        "Received SIGTERM",
    ),
    # per job (start →, finish ←, retry ↻, abort ⊘), per health record, per Worker start/stop
    # (the supervisor starts a new Worker after each store outage; `rotator worker` says
    # start and stop itself, with its own counts)
    "arq.worker": (
        "%6.2fs →",
        "%6.2fs ←",
        "%6.2fs ↻",
        "%6.2fs ⊘",
        "recording health",
        "Starting worker for",
        "redis_version=",
        "shutdown on",
        "Setting allow_pick_jobs",
    ),
    "arq.connections": ("redis_version=", "redis connection successful"),
}


class Chatter(logging.Filter):
    """Relabel the libraries' routine INFO lines (ROUTINE) as DEBUG; drop them above DEBUG.

    A filter on the handler runs after the handler's level check, so it decides here
    whether a relabelled record still passes `level`."""

    def __init__(self, level: str = "INFO") -> None:
        super().__init__()
        self.level = logging.getLevelName(level.upper())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        prefixes = ROUTINE.get(record.name)
        if not prefixes or not str(record.msg).startswith(prefixes):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.level <= logging.DEBUG


class Scope(logging.Filter):
    """Adds the request scope's id and tenant to each record (`request_id`, `tenant`: None
    outside a request) and, for the text format, `scope`: their ` [...]` suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        # a line that speaks for many requests (rotator/folded_log.py) names none of them
        scope = None if getattr(record, "unscoped", False) else request_scope.current()
        request_id = scope.request_id if scope is not None and scope.request_id else None
        tenant = scope.tenant if scope is not None else None
        record.request_id, record.tenant = request_id, tenant
        parts = [f"request_id={request_id}"] if request_id else []
        if tenant:
            parts.append(f"tenant={tenant}")
        record.scope = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, message, process, request_id and tenant
    where known, exception (its traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": iso_ms(int(record.created * 1000)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in ("request_id", "tenant"):
            value = getattr(record, name, None)
            if value:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """A logging.config.dictConfig dict: stderr, FORMAT (text) or JsonLines (json), `level`
    for our loggers and the libraries' alike, Chatter and Scope on the one handler. uvicorn
    applies it in each of its worker processes too (it is passed as log_config), so
    everything here is importable by name."""
    level = level.upper()
    formatter = {"()": "rotator.logs.JsonLines"} if log_format == "json" else {"format": FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": formatter},
        "filters": {
            "chatter": {"()": "rotator.logs.Chatter", "level": level},
            "scope": {"()": "rotator.logs.Scope"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "filters": ["chatter", "scope"],
                "level": level,
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own config would give these handlers of their own: one handler here
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            # query strings carry tokens: never an access log, whatever the level
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure(level: str, log_format: str = "text") -> None:
    """Apply log_config(level, log_format) to this process."""
    import logging.config

    logging.config.dictConfig(log_config(level, log_format))
