"""Maintenance commands: `rotator rewrap` (re-encrypt under the newest master key) and
`rotator migrate` (bring the store's data format up to this version's)."""

from __future__ import annotations

import argparse

from rotator.cli.common import CliError, data_store, emit, say, unlocked_store, with_store
from rotator.settings import Settings


def cmd_rewrap(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import rewrap

    with unlocked_store(settings, seals=True) as live:
        ring = live.keyring
        say(
            f"re-encrypting every stored secret under master key {ring.primary_id!r} "
            f"(fingerprint {ring.primary_fingerprint})"
        )
        report = with_store(
            live, lambda r, d: rewrap.rewrap_all(r, d, ring, progress=lambda line: say(line))
        )
    emit(
        args,
        {
            "rewrapped": report.rewrapped,
            "already_current": report.current,
            "vanished": report.vanished,
            "failed": len(report.failed),
        },
    )
    for where in report.failed:
        say(f"cannot decrypt {where} with any configured master key")
    return 1 if report.failed else 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the store's pending migrations (store/migrations.py), printing progress; with
    --check, report them and write nothing (exit 1 when some are pending)."""
    from rotator.store import keys, migrations

    with data_store(settings) as live:
        try:
            if args.check:
                found = with_store(live, lambda r, d: migrations.status(r))
            else:
                found = with_store(live, lambda r, d: migrations.migrate(r, d, say))
        except migrations.FormatRefused as exc:
            raise CliError(exc.message, 2) from None
    pending = [m for m, n in found.steps]
    emit(
        args,
        {
            "stored_version": found.stored,
            "code_version": keys.SCHEMA_VERSION,
            "pending": ",".join(f"{m.version}:{m.name}" for m in pending) or None,
            "items": sum(n for _, n in found.steps),
            "migrated": not args.check and bool(pending),
        },
    )
    if args.check:
        for migration, items in found.steps:
            say(f"pending: migration {migration.version} {migration.name} ({items} to change): "
                f"{migration.what}")  # fmt: skip
        return 1 if pending else 0
    return 0


def migrate_before_serving(live: Settings) -> None:
    """`serve` and `run`: bring the store up to this version's data format before serving;
    refuse (exit 2) a store written by a newer version."""
    from rotator.store import migrations

    try:
        with_store(live, lambda r, d: migrations.migrate(r, d, say))
    except migrations.FormatRefused as exc:
        raise CliError(exc.message, 2) from None


def refuse_a_newer_store(live: Settings) -> None:
    """`worker`: it migrates nothing (serve does), but must not work on data of a format it
    does not know: exit 2, as serve would."""
    from rotator.store import migrations

    try:
        with_store(live, lambda r, d: migrations.status(r))
    except migrations.FormatRefused as exc:
        raise CliError(exc.message, 2) from None
