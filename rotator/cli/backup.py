"""The data commands: `rotator backup FILE` and `rotator restore FILE`.

`rotator migrate` (issue #13: upgrade the stored data to the code's schema version)
belongs here too: a restore writes the data of the file's schema version as it is.
Exit codes as every command: 0 done; 1 refused (the file, or a store that holds
tenants); 2 settings (a master key that does not open the data), the store, or another
restore running (rotator/store/claims.py).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from rotator.cli.common import (
    CliError,
    data_store,
    now_ms,
    say,
    store_unavailable,
    unlocked_store,
    with_store,
)
from rotator.cli.framework import add_command
from rotator.settings import Settings, SettingsError
from rotator.store.connection import is_unavailable, unavailability

BACKUP_DESCRIPTION = """\
Write every tenant's data to FILE: one JSON line per tenant, secrets still sealed (a
restore needs the same master keys), each line authenticated with an HMAC derived from
the first key of ROTATOR_MASTER_KEY. Safe while the service runs: each tenant is read in
one step, as it was at that instant. Console sessions, request-id records and demo
throttle state are left out. FILE appears complete or not at all (written to a temporary
file, then renamed); it is created with mode 0600. Progress goes to stderr, the summary
to stdout. Details: docs/operations.md, "Backup and restore"."""

RESTORE_DESCRIPTION = """\
Restore the tenants of FILE (written by `rotator backup`). The whole file is checked
first: a truncated, damaged, reordered or foreign file, or one whose secrets the
configured master keys cannot open, is refused and nothing is written. By default the
store must hold no tenant (a restore of this same file that was interrupted is resumed);
--replace restores into a store that holds tenants. Each tenant is written in one step
(a crash leaves whole tenants; running the restore again finishes it). Usage counters
keep their expiry; ones that expired since the backup are not written. The global
registries (tenants, webhook tenants, time services) are rebuilt from the tenants.
Details: docs/operations.md, "Backup and restore"."""


RESTORE_RESUMES = (
    "the tenants restored so far are whole; run the same restore again to finish it (a "
    "restore of the same file resumes)"
)
"""What a restore cut short (Ctrl-C, the store failing) says after why it stopped."""


def add_parsers(sub: Any) -> None:
    """`backup` and `restore`, as subcommands of the top-level parser."""
    summary: dict[str, Any] = {
        "json_help": "print the summary as one JSON object",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    backup = add_command(
        sub,
        "backup",
        cmd_backup,
        "write every tenant's data to FILE (secrets stay sealed)",
        description=BACKUP_DESCRIPTION,
        **summary,
    )
    backup.add_argument(
        "file", metavar="FILE", type=_backup_file, help="the backup file to write (not `-`)"
    )
    backup.add_argument(
        "--force", action="store_true", help="overwrite FILE if it exists (default: refuse)"
    )

    restore = add_command(
        sub,
        "restore",
        cmd_restore,
        "restore the tenants of a backup FILE, checked as a whole first",
        description=RESTORE_DESCRIPTION,
        **summary,
    )
    restore.add_argument(
        "file", metavar="FILE", type=_restore_file, help="a file `rotator backup` wrote (not `-`)"
    )
    restore.add_argument(
        "--replace",
        action="store_true",
        help="the store may hold tenants: each tenant of FILE replaces the one with its id "
        "(all its keys, sessions included), the store's other tenants are kept",
    )
    restore.add_argument(
        "--check",
        action="store_true",
        help="only check FILE (complete, authentic, its secrets open with the configured "
        "master keys) and write nothing; needs no store",
    )


def _not_dash(why: str) -> Callable[[str], Path]:
    """FILE as a path; `-`, which elsewhere means stdin or stdout, is refused with `why`
    (taken as a path it would name a file called "-")."""

    def path(text: str) -> Path:
        if text == "-":
            raise argparse.ArgumentTypeError(f"{why}; give a path")
        return Path(text)

    return path


_backup_file = _not_dash(
    "a backup is written to a file, not stdout: it appears there complete or not at all "
    "(written beside it, then renamed)"
)
_restore_file = _not_dash(
    "a restore reads a file, not stdin: it reads it twice (checked whole, then written)"
)


class _Progress:
    """`<verb>: done/total tenants` on stderr: the first, the last, and one a second."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.last_s = 0.0

    def __call__(self, done: int, total: int) -> None:
        now_s = time.monotonic()
        if done in (1, total) or now_s - self.last_s >= 1.0:
            say(f"{self.verb}: {done}/{total} tenants")
            self.last_s = now_s


def _size(size: int) -> str:
    """`812 bytes`, `13.0 kB`, `45.1 MB`: decimal units, as `ls --si` shows them."""
    if size < 1000:
        return f"{size} bytes"
    value = size / 1000
    for unit in ("kB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _print_json(fields: dict[str, Any]) -> None:
    print(msgspec.json.encode(fields).decode())


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store.backup import dump
    from rotator.store.backup.snapshot import BackupExists

    started_s = time.monotonic()
    # the key ring must open the store's data: a file MACed with another key could not be
    # restored with the keys its secrets need
    try:
        with unlocked_store(settings, seals=False) as live:
            ring = live.keyring
            report = with_store(
                live,
                lambda r, d: dump.write_backup(
                    r, ring, args.file, clock=now_ms, overwrite=args.force,
                    progress=_progress(args, "backup"),
                ),
            )  # fmt: skip
    except BackupExists as exc:
        raise CliError(
            f"{exc.path} exists; --force overwrites it, or choose another name"
        ) from None
    seconds = round(time.monotonic() - started_s, 1)
    if report.reread:
        say(f"{report.reread} tenants changed while they were listed and were read again")
    if report.vanished:
        say(f"{report.vanished} tenants were deleted during the backup and are not in it")
    if report.unlisted_keys:
        say(f"left out {report.unlisted_keys} keys of tenants not in kr:tenants (being deleted)")
    if args.json:
        _print_json({**msgspec.structs.asdict(report), "seconds": seconds})
    else:
        print(
            f"backed up {report.tenants} tenants ({report.keys} keys, {_size(report.bytes)}) "
            f"to {report.file} in {seconds} s; secrets sealed with master key "
            f"{', '.join(report.sealed_with) or '(none stored)'}"
        )
    return 0


def _progress(args: argparse.Namespace, verb: str) -> Any:
    return None if args.json else _Progress(verb)


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import token_index
    from rotator.store.backup import load
    from rotator.store.backup.format import FileRefused, KeyNotConfigured

    started_s = time.monotonic()
    ring = settings.keyring  # ROTATOR_MASTER_KEY, or DATA_DIR/master.key; else exit 2
    suffix = "" if args.check else "; nothing was restored"
    try:
        checked = load.check_file(args.file, ring)
    except FileRefused as exc:
        raise CliError(exc.message + suffix) from None
    except KeyNotConfigured as exc:
        raise SettingsError("master_key", f"{exc}{suffix}") from None
    for where in checked.undecryptable:
        say(f"note: {where} does not open with its master key (damaged before the backup?)")
    for owners in checked.shared_tokens.values():
        say(
            f"note: {' and '.join(map(token_index.describe, owners))} hold the same imported "
            "token in this file (given to both by an earlier restore, or moved while the "
            "backup ran): restored, none of them accepts it; give each a new token"
        )
    if args.check:
        summary = {
            "file": checked.file,
            "created_at": checked.created_at,
            "tenants": len(checked.tenants),
            "keys": checked.keys,
            "sealed_with": checked.sealed_with,
            "shared_tokens": list(checked.shared_tokens.values()),
        }
        if args.json:
            _print_json(summary)
        else:
            print(
                f"{checked.file}: a complete backup of {len(checked.tenants)} tenants "
                f"({checked.keys} keys) made {checked.created_at}; its secrets open with "
                "the configured master keys"
            )
        return 0
    try:
        with data_store(settings) as live:
            report = with_store(
                live,
                lambda r, d: load.restore(
                    r, d, ring, checked, clock=now_ms, replace=args.replace,
                    progress=_progress(args, "restore"), say=say,
                ),
            )  # fmt: skip
    except KeyNotConfigured as exc:
        raise SettingsError("master_key", str(exc)) from None
    # each tenant is written whole, and a restore of the same file resumes (load.py)
    except KeyboardInterrupt:
        raise CliError(f"interrupted: {RESTORE_RESUMES}", code=130) from None
    except Exception as exc:  # the store failing midway (main's handling, plus the advice)
        if not is_unavailable(exc):
            raise
        raise CliError(f"{store_unavailable(unavailability(exc))}: {RESTORE_RESUMES}", 2) from None
    seconds = round(time.monotonic() - started_s, 1)
    if args.json:
        _print_json({**msgspec.structs.asdict(report), "seconds": seconds})
        return 0
    notes = []
    if report.resumed:
        notes.append("finished an interrupted restore of this file")
    if report.replaced:
        notes.append(f"replaced {report.replaced} tenants the store held")
    if report.kept:
        notes.append(f"kept {report.kept} other tenants")
    if report.expired:
        notes.append(f"{report.expired} keys expired since the backup were not written")
    print(
        f"restored {report.tenants} tenants ({report.keys} keys) from {report.file} "
        f"(made {report.created_at}) in {seconds} s" + "".join(f"; {n}" for n in notes)
    )
    return 0
