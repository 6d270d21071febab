"""`rotator app ...`: a tenant's client apps, each with its own token, allowlist and limit."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from rotator.cli.common import read_chosen_token, token_file_arg_help
from rotator.cli.framework import TENANT, Command, Context, arg, unless_imported
from rotator.cli.services import max_daily
from rotator.cli.values import given, name_and_allowlist, positive_int
from rotator.store import apps

APP_ID = arg("app_id", metavar="APP_ID", type=positive_int, help="the app's id")
APP_TOKEN_FILE = arg(
    "--token-file", metavar="FILE", field="app_token", path=True,
    help=token_file_arg_help("the app token"),
)  # fmt: skip


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(apps.list_apps, await ctx.tenant(args.tenant))


async def _show(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(apps.get_app, await ctx.tenant(args.tenant), args.app_id)


async def _create(ctx: Context, args: argparse.Namespace) -> Any:
    fields = given(args, "name", "ip_allowlist", "max_daily_requests")
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(apps.add_app, tenant, **fields, app_token=args.chosen_token)


async def _change(ctx: Context, args: argparse.Namespace, **changes: Any) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(apps.update_app, tenant, args.app_id, **changes)


async def _update(ctx: Context, args: argparse.Namespace) -> Any:
    changes = name_and_allowlist(args) | given(args, "max_daily_requests")
    return await _change(ctx, args, **changes)


async def _token(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(apps.issue_app_token, tenant, args.app_id, args.chosen_token)


async def _delete(ctx: Context, args: argparse.Namespace) -> Any:
    await ctx.call(apps.delete_app, await ctx.tenant(args.tenant), args.app_id)


COMMANDS = [
    Command("app", "list", "a tenant's apps", _list, args=(TENANT,), api=("GET /v1/apps",)),
    Command("app", "show", "one app (GET /v1/apps/{id})", _show, args=(TENANT, APP_ID),
            api=("GET /v1/apps/{app_id}",)),
    Command(
        "app", "create", "create an app; prints its token once", _create,
        args=(
            TENANT,
            arg("name", metavar="NAME"),
            arg("--allow", dest="ip_allowlist", action="append", default=[], metavar="CIDR",
                help="allowed client network (repeatable)"),
            max_daily("daily request limit of this app"),
            APP_TOKEN_FILE,
        ),
        note="the app token is shown once: only its hash is stored",
        prints_token=unless_imported,
        prepare=read_chosen_token,
        api=("POST /v1/apps",),
    ),
    Command(
        "app", "update", "change an app's name, allowlist or limit (PATCH /v1/apps/{id})",
        _update,
        args=(
            TENANT, APP_ID,
            arg("--name", help="the app's name"),
            arg("--allow", dest="ip_allowlist", action="append", metavar="CIDR",
                help="allowed client network (repeatable; replaces the allowlist)"),
            arg("--allow-any", field="ip_allowlist", action="store_true",
                help="remove the app's IP allowlist"),
            max_daily("the app's daily request limit", update=True),
        ),
        api=("PATCH /v1/apps/{app_id}",),
    ),
    Command("app", "suspend", "suspend an app: its token gets 403 at once; the app is kept",
            partial(_change, suspended=True), args=(TENANT, APP_ID),
            api=("PATCH /v1/apps/{app_id}",)),
    Command("app", "resume", "resume a suspended app: its token works again",
            partial(_change, suspended=False), args=(TENANT, APP_ID),
            api=("PATCH /v1/apps/{app_id}",)),
    Command("app", "token", "issue a new app token; the previous one stops working at once",
            _token, args=(TENANT, APP_ID, APP_TOKEN_FILE),
            note="the app token is shown once: only its hash is stored",
            prints_token=unless_imported,
            prepare=read_chosen_token,
            api=("POST /v1/apps/{app_id}/token",)),
    Command("app", "delete", "delete an app; its token stops working at once", _delete,
            args=(TENANT, APP_ID), api=("DELETE /v1/apps/{app_id}",)),
]  # fmt: skip
