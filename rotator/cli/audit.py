"""`rotator audit`: the audit log, newest first (every tenant's, or one tenant's)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from rotator.cli import output
from rotator.cli.framework import Command, Context, arg
from rotator.cli.values import positive_int
from rotator.domain.records import AuditPage
from rotator.store import audit


def _moment(text: str) -> int:
    """An RFC 3339 time (`2026-12-01T00:00:00Z`; without an offset: UTC) as ms."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def _audit(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant) if args.tenant else None
    return await ctx.call(
        audit.read_audit,
        viewer=None,
        tenant=tenant,
        action=args.action,
        since_ms=args.since,
        until_ms=args.until,
        limit=args.limit,
        cursor=args.cursor,
    )


def _table(page: AuditPage) -> str:
    text = output.table(
        page.records,
        columns=(
            "at",
            "tenant",
            "role",
            "via",
            "credential",
            "address",
            "action",
            "resource",
            "outcome",
            "reason",
        ),
    )
    if page.next_cursor is not None:
        text += f"\n(older: --cursor {page.next_cursor})"
    return text


COMMANDS = [
    Command(
        "", "audit", "the audit log: who changed what, newest first", _audit,
        args=(
            arg("--tenant", help="only this tenant's records (its id or name)"),
            arg("--action", help="only this action (create_service, update_key, ...)"),
            arg("--since", type=_moment, help="only records at or after this time (RFC 3339)"),
            arg("--until", type=_moment, help="only records at or before this time (RFC 3339)"),
            arg("--limit", type=positive_int, default=50, help="records (default 50)"),
            arg("--cursor", help="next_cursor of the previous page"),
        ),
        human=_table,
        operator=True,
        api=("GET /v1/audit",),
    ),
]  # fmt: skip
