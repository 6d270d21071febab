"""Maintenance commands: `rotator rewrap` (re-encrypt under the newest master key)."""

from __future__ import annotations

import argparse

from rotator.cli.common import emit, say, unlocked_store, with_store
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
