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
"""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

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


def log_config(level: str) -> dict[str, Any]:
    """A logging.config.dictConfig dict: stderr, FORMAT, `level` for our loggers and the
    libraries' alike, Chatter on the one handler. uvicorn applies it in each of its worker
    processes too (it is passed as log_config), so everything here is importable by name."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "filters": {"chatter": {"()": "rotator.logs.Chatter", "level": level}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "filters": ["chatter"],
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


def configure(level: str) -> None:
    """Apply log_config(level) to this process."""
    import logging.config

    logging.config.dictConfig(log_config(level))
