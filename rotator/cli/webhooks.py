"""`rotator webhook ...`: a tenant's webhook delivery log, and a test event."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.cli import output
from rotator.cli.framework import TENANT, Command, Context, arg, positive_int
from rotator.domain.records import DeliveryPage
from rotator.store import webhooks
from rotator.store.test_event import send_test_event


async def _deliveries(ctx: Context, args: argparse.Namespace) -> Any:
    return await webhooks.deliveries(
        ctx.redis, await ctx.tenant(args.tenant), limit=args.limit, cursor=args.cursor
    )


def _deliveries_table(page: DeliveryPage) -> str:
    text = output.table(page.deliveries)
    if page.next_cursor is not None:
        text += f"\n(older: --cursor {page.next_cursor})"
    return text


async def _test(ctx: Context, args: argparse.Namespace) -> Any:
    return await send_test_event(
        ctx.redis, await ctx.tenant(args.tenant), events_maxlen=ctx.settings.events_maxlen
    )


COMMANDS = [
    Command(
        "webhook", "deliveries", "recent webhook delivery attempts, newest first", _deliveries,
        args=(
            TENANT,
            arg("--limit", type=positive_int, default=50, help="entries (default 50)"),
            arg("--cursor", type=positive_int, help="next_cursor of the previous page"),
        ),
        human=_deliveries_table,
        api=("GET /v1/webhooks/deliveries",),
    ),
    Command("webhook", "test", "send a webhook.test event to the tenant's webhook", _test,
            args=(TENANT,), api=("POST /v1/webhooks/test",)),
]  # fmt: skip
