"""`rotator key ...`: a service's provider keys. Secrets are read from stdin or a hidden
prompt, never from the command line; only their masked forms are ever printed."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.cli.common import read_secret
from rotator.cli.framework import TENANT, Command, Context, arg, limit_or_none, positive_int
from rotator.cli.services import SLUG
from rotator.store import services

KEY_ID = arg("key_id", metavar="KEY_ID", type=positive_int, help="the key's id")


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await services.list_keys(ctx.redis, await ctx.tenant(args.tenant), args.slug)


def _read(args: argparse.Namespace) -> None:
    args.secret = read_secret("provider key (input hidden): ")


async def _add(ctx: Context, args: argparse.Namespace) -> Any:
    return await services.add_key(
        ctx.redis,
        ctx.durability,
        ctx.keyring,
        await ctx.tenant(args.tenant),
        args.slug,
        label=args.label,
        secret=args.secret,
        max_daily_requests=args.max_daily_requests,
        now_ms=ctx.now_ms(),
    )


async def _change(ctx: Context, args: argparse.Namespace, **changes: Any) -> Any:
    return await services.update_key(
        ctx.redis, ctx.durability, await ctx.tenant(args.tenant), args.slug, args.key_id,
        **changes,
    )  # fmt: skip


async def _update(ctx: Context, args: argparse.Namespace) -> Any:
    changes = {
        name: getattr(args, name)
        for name in ("label", "max_daily_requests")
        if getattr(args, name) is not ...
    }
    return await _change(ctx, args, **changes)


async def _enable(ctx: Context, args: argparse.Namespace) -> Any:
    return await _change(ctx, args, active=True)


async def _disable(ctx: Context, args: argparse.Namespace) -> Any:
    return await _change(ctx, args, active=False)


async def _delete(ctx: Context, args: argparse.Namespace) -> Any:
    await services.remove_key(
        ctx.redis, ctx.durability, await ctx.tenant(args.tenant), args.slug, args.key_id
    )


COLUMNS = ("id", "label", "active", "current", "max_daily_requests", "key_masked", "created_at")

COMMANDS = [
    Command("key", "list", "a service's keys in rotation order (masked)", _list,
            args=(TENANT, SLUG), columns=COLUMNS),
    Command(
        "key", "add",
        "add a provider key; the secret is read from stdin, or a hidden prompt on a terminal",
        _add,
        args=(
            TENANT, SLUG,
            arg("--label", required=True, help="a name for people, e.g. Primary"),
            arg("--max-daily", dest="max_daily_requests", type=positive_int, metavar="N",
                help="daily request limit of this key"),
        ),
        keyring=True,
        prepare=_read,
    ),
    Command(
        "key", "update", "relabel a key or change its daily limit", _update,
        args=(
            TENANT, SLUG, KEY_ID,
            arg("--label", default=..., help="a name for people"),
            arg("--max-daily", dest="max_daily_requests", type=limit_or_none, default=...,
                metavar="N|none", help="daily request limit of this key; none removes it"),
        ),
    ),
    Command("key", "enable", "put a key back into rotation", _enable, args=(TENANT, SLUG, KEY_ID)),
    Command("key", "disable", "take a key out of rotation (kept, can be enabled again)",
            _disable, args=(TENANT, SLUG, KEY_ID)),
    Command("key", "delete", "delete a key and its encrypted secret", _delete,
            args=(TENANT, SLUG, KEY_ID)),
]  # fmt: skip
