"""`rotator`: run the service, and administer tenants, services, keys and apps.

Administrative commands talk to Redis directly through the store functions (the
same checks as the HTTP API), not over HTTP. Without ROTATOR_REDIS_URL every
command uses the data dir's embedded Valkey: it joins the one already running
(`rotator run` / `rotator serve`) or starts one for its own duration.

Exit codes: 0 done; 1 the request was refused (unknown tenant, slug taken, bad
input, a command line that does not parse) or rewrap could not open some blobs; 2 bad
settings, or Redis unreachable or too slow, at start or midway (one line on stderr naming
the setting, never a traceback), or another process at the same work (a restore running):
each worth a retry; 130 interrupted (Ctrl-C); 141 the reader of stdout went away before
the output was written (`| head`), after the command itself was done, as a shell reports
a tool SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from rotator.cli import apps, audit, backup, imports, keys, services, tenants, webhooks
from rotator.cli.common import CliError, say, store_unavailable, to_devnull
from rotator.cli.framework import add_command, add_commands
from rotator.cli.maintenance import cmd_migrate, cmd_rewrap
from rotator.cli.processes import cmd_run, cmd_serve, cmd_worker
from rotator.domain.errors import RotatorError, StoreUnavailable
from rotator.settings import Settings, SettingsError
from rotator.store.claims import Claimed
from rotator.store.connection import is_unavailable, unavailability

COMMANDS = [
    *tenants.COMMANDS, *services.COMMANDS, *keys.COMMANDS, *apps.COMMANDS,
    *webhooks.COMMANDS, *imports.COMMANDS, *audit.COMMANDS,
]  # fmt: skip
MANAGEMENT_COMMANDS = [c for c in COMMANDS if c.store]
"""The commands that call a management store function: each names its API operations
(`webhook listen`, a local receiver, opens no store and is no API operation)."""

RUN_DESCRIPTION = """\
Embedded Valkey + API + worker, with a demo tenant: what `make run` starts.

It takes no options: it is configured by the ROTATOR_* settings below (the port with
ROTATOR_PORT, the data with ROTATOR_DATA_DIR, an external store with ROTATOR_REDIS_URL).
Before it changes anything it locks DATA_DIR/run.lock (a second `rotator run` on the
same data dir exits 2 naming the running one) and checks that ROTATOR_HOST:ROTATOR_PORT
can be bound (exit 2 naming ROTATOR_PORT otherwise). With no master key configured it
generates DATA_DIR/master.key, but only for a store that holds no sealed data. A child
(API or worker) that exits is restarted with backoff (1 s, 2 s, 4 s ... 30 s); Ctrl-C or
SIGTERM stops the API, then the worker, then Valkey."""


def settings_help() -> str:
    lines = ["settings (environment variables; unset = default):"]
    for name, default, doc in Settings.describe():
        lines.append(f"  {name:<31} default {default}")
        lines.append(f"      {doc}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """Exit status 1 for a command line that does not parse (argparse's own is 2): a bad
    --port is bad input like a bad --secret, and 2 stays "settings or store", which a
    script may retry."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Refuse what this parser does not know, with its own usage. argparse parses a
        command with its subparser's parse_known_args and leaves the extra words to the
        top-level parser, whose usage (`rotator [-h] COMMAND ...`) says nothing of the
        command that was mistyped; every parser of this CLI is this class (add_subparsers
        makes its parsers of its parent's type), so the deepest one refuses them first."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rotator",
        description="keyrotator: hands out rotated provider API keys to client apps.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument(
        "--json", action="store_true", help="print the result as the API's JSON, exactly"
    )

    processes = {"epilog": settings_help(), "formatter_class": argparse.RawDescriptionHelpFormatter}
    add_command(sub, "serve", cmd_serve, "run the HTTP API (uvicorn, ROTATOR_WORKERS processes)",
                **processes)  # fmt: skip
    worker = add_command(
        sub, "worker", cmd_worker, "run an arq worker (events, webhooks, expiry sweep)", **processes
    )
    worker.add_argument(
        "--check", action="store_true",
        help="run nothing: exit 0 if a worker runs on this host (it records itself alive "
             "every 5 s), 1 if none does; the container health check",
    )  # fmt: skip
    add_command(
        sub, "run", cmd_run,
        "embedded Valkey + API + worker, with a demo tenant: what `make run` starts",
        description=RUN_DESCRIPTION, **processes,
    )  # fmt: skip

    add_commands(sub, COMMANDS, out)
    # rewrap and migrate are no API operation: their --json is their own summary
    add_command(
        sub, "rewrap", cmd_rewrap,
        "re-encrypt every stored secret under the first key of ROTATOR_MASTER_KEY",
        json_help="print the counts as one JSON object: rewrapped, already_current, vanished, "
                  "failed (secrets no configured master key opens)",
    )  # fmt: skip
    migrate = add_command(
        sub, "migrate", cmd_migrate,
        "bring the store's data format up to this version's (serve and run do it at start)",
        json_help="print the result as one JSON object: stored_version, code_version, pending "
                  "(VERSION:NAME,... or null), items (what those migrations change), migrated "
                  "(true when this run migrated)",
    )  # fmt: skip
    migrate.add_argument(
        "--check", action="store_true",
        help="write nothing: report the store's format and the pending migrations; exit 1 "
             "when some are pending",
    )  # fmt: skip
    backup.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        code = args.func(args, settings)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # an OSError, but not the store's (redis-py wraps socket errors in its own): the
        # command was done, only its output was lost, so not exit 2, which a script retries
        prints_token = getattr(args, "prints_token", None)
        return _output_closed(token_lost=prints_token is not None and prints_token(args))
    except SettingsError as exc:
        say(str(exc))
        return 2
    except CliError as exc:
        say(str(exc))
        return exc.code
    except StoreUnavailable as exc:
        return _store_unavailable(unavailability(exc))
    except Claimed as exc:  # another process at the same work: worth a retry once it is done
        say(exc.message)
        return 2
    except RotatorError as exc:  # refused by the store's checks: the message names the field
        say(exc.message)
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as exc:
        # the same errors the API answers 503 (rotator/api/errors.py), caught here once
        # instead of in every store function
        if not is_unavailable(exc):
            raise
        return _store_unavailable(unavailability(exc))


OUTPUT_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a tool whose reader went away."""


def _output_closed(*, token_lost: bool) -> int:
    """`token_lost`: the command made a token that was shown once (Command.prints_token)."""
    to_devnull(sys.stdout)
    lost = " (a token it printed is lost: issue a new one)" if token_lost else ""
    say(f"stdout was closed before all output was written; the command itself was done{lost}")
    return OUTPUT_CLOSED


def _store_unavailable(cause: str) -> int:
    say(store_unavailable(cause))
    return 2
