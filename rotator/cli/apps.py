"""`rotator app ...`: a tenant's client apps, each with its own token, allowlist and limit."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.cli.framework import TENANT, Command, Context, arg, positive_int
from rotator.store import apps

APP_ID = arg("app_id", metavar="APP_ID", type=positive_int, help="the app's id")


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await apps.list_apps(ctx.redis, await ctx.tenant(args.tenant))


async def _create(ctx: Context, args: argparse.Namespace) -> Any:
    return await apps.add_app(
        ctx.redis,
        ctx.durability,
        await ctx.tenant(args.tenant),
        name=args.name,
        ip_allowlist=args.ip_allowlist,
        max_daily_requests=args.max_daily_requests,
        now_ms=ctx.now_ms(),
    )


async def _delete(ctx: Context, args: argparse.Namespace) -> Any:
    await apps.delete_app(ctx.redis, ctx.durability, await ctx.tenant(args.tenant), args.app_id)


COMMANDS = [
    Command("app", "list", "a tenant's apps", _list, args=(TENANT,)),
    Command(
        "app", "create", "create an app; prints its token once", _create,
        args=(
            TENANT,
            arg("name", metavar="NAME"),
            arg("--allow", dest="ip_allowlist", action="append", default=[], metavar="CIDR",
                help="allowed client network (repeatable)"),
            arg("--max-daily", dest="max_daily_requests", type=positive_int, metavar="N",
                help="daily request limit of this app"),
        ),
        note="the app token is shown once: only its hash is stored",
    ),
    Command("app", "delete", "delete an app; its token stops working at once", _delete,
            args=(TENANT, APP_ID)),
]  # fmt: skip
