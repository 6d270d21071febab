"""`rotator tenant ...`: the operator's tenants and a tenant's own settings and tokens."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.cli.common import read_secret
from rotator.cli.framework import TENANT, Command, Context, arg
from rotator.store import tenants


async def _create(ctx: Context, args: argparse.Namespace) -> Any:
    return await tenants.create_tenant(
        ctx.redis, ctx.durability, name=args.name, demo=args.demo, now_ms=ctx.now_ms()
    )


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await tenants.list_tenants(ctx.redis)


async def _show(ctx: Context, args: argparse.Namespace) -> Any:
    return await tenants.get_tenant(ctx.redis, await ctx.tenant(args.tenant))


def _read_webhook_secret(args: argparse.Namespace) -> None:
    if args.webhook_secret_stdin:
        args.webhook_secret = read_secret("webhook signing secret (whsec_..., input hidden): ")


async def _update(ctx: Context, args: argparse.Namespace) -> Any:
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    if args.ip_allowlist is not None:
        changes["ip_allowlist"] = args.ip_allowlist
    if args.allow_any:
        changes["ip_allowlist"] = []
    if args.webhook_url is not None:
        changes["webhook_url"] = args.webhook_url
    if args.no_webhook:
        changes["webhook_url"] = None
    if args.webhook_events is not None:
        changes["webhook_events"] = [e for e in args.webhook_events.split(",") if e]
    if getattr(args, "webhook_secret", None):
        changes["webhook_secret"] = args.webhook_secret
    return await tenants.update_tenant(
        ctx.redis,
        ctx.durability,
        ctx.keyring,
        await ctx.tenant(args.tenant),
        **changes,
        webhook_allow_private=ctx.settings.webhook_allow_private,
    )


async def _client_token(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await tenants.issue_client_token(ctx.redis, ctx.durability, tenant)


async def _admin_token(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await tenants.issue_admin_token(ctx.redis, ctx.durability, tenant)


COMMANDS = [
    Command(
        "tenant", "create", "create a tenant; prints its admin and client tokens once", _create,
        args=(
            arg("name", metavar="NAME"),
            arg("--demo", action="store_true", help="masked keys, per-IP throttling"),
        ),
        note="the tokens are shown once: only their hashes are stored",
    ),
    Command("tenant", "list", "list tenants, oldest first", _list),
    Command("tenant", "show", "a tenant's settings (GET /v1/tenant)", _show, args=(TENANT,)),
    Command(
        "tenant", "update", "change a tenant's settings (PATCH /v1/tenant)", _update,
        args=(
            TENANT,
            arg("--name", help="the tenant's display name"),
            arg("--allow", dest="ip_allowlist", action="append", metavar="CIDR",
                help="allowed client network (repeatable; replaces the allowlist)"),
            arg("--allow-any", field="ip_allowlist", action="store_true",
                help="remove the IP allowlist"),
            arg("--webhook-url", metavar="URL", help="where events are POSTed (http/https)"),
            arg("--no-webhook", field="webhook_url", action="store_true",
                help="remove the webhook"),
            arg("--webhook-events", metavar="TYPE,TYPE", help="subscribed event types"),
            arg("--webhook-secret-stdin", field="webhook_secret", action="store_true",
                help="read a new signing secret (whsec_...) from stdin"),
        ),
        keyring=True,
        prepare=_read_webhook_secret,
    ),
    Command(
        "tenant", "client-token",
        "issue a new client token; the previous one stops working at once", _client_token,
        args=(TENANT,),
        note="the client token is shown once: only its hash is stored",
    ),
    Command(
        "tenant", "admin-token",
        "issue a new admin token; the previous one (and its console sessions) stop at once",
        _admin_token,
        args=(TENANT,),
        note="the admin token is shown once: only its hash is stored",
    ),
]  # fmt: skip
