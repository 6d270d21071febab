"""`rotator tenant ...`: the operator's tenants and a tenant's own settings and tokens."""

from __future__ import annotations

import argparse
import asyncio
import time
from functools import partial
from typing import Any

from rotator.cli.common import (
    CliError,
    read_chosen_token,
    read_secret,
    say,
    store_unavailable,
    token_file_arg_help,
)
from rotator.cli.framework import TENANT, Command, Context, always, arg, unless_imported
from rotator.cli.values import name_and_allowlist
from rotator.domain.errors import NotFound
from rotator.store import tenant_deletion, tenants
from rotator.store.connection import is_unavailable, unavailability
from rotator.tuning import PROGRESS_EVERY_S

CLIENT_TOKEN_FILE = arg(
    "--token-file", metavar="FILE", field="client_token", path=True,
    help=token_file_arg_help("the client token"),
)  # fmt: skip


async def _create(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(
        tenants.create_tenant, name=args.name, demo=args.demo, client_token=args.chosen_token
    )


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(tenants.list_tenants)


async def _show(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(tenants.get_tenant, await ctx.tenant(args.tenant))


async def _info(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(tenants.get_tenant_detail, tenant)


async def _status(ctx: Context, args: argparse.Namespace, **changes: Any) -> Any:
    """PATCH /v1/admin/tenants/{id}: rename, suspend or resume."""
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(tenants.update_tenant_status, tenant, **changes)


async def _rename(ctx: Context, args: argparse.Namespace) -> Any:
    return await _status(ctx, args, name=args.name)


async def _delete(ctx: Context, args: argparse.Namespace) -> Any:
    try:
        tenant = await ctx.tenant(args.tenant)
    except NotFound:
        # gone from view already: a deletion under way (interrupted?) is finished by its id
        if args.tenant not in {p.tenant for p in await ctx.call(tenant_deletion.pending)}:
            raise
        tenant = args.tenant
    # TENANT may be a name: --confirm repeats it, or gives the id
    confirm = tenant if args.confirm in (args.tenant, tenant) else args.confirm
    last_said = time.monotonic()

    def progress(deletion: tenant_deletion.Deletion) -> None:
        nonlocal last_said
        if not deletion.done and time.monotonic() - last_said >= PROGRESS_EVERY_S:
            last_said = time.monotonic()
            say(f"deleting tenant {tenant}: {deletion.removed} keys removed so far")

    # cut short, the deletion resumes where it stopped when run again (tenant_deletion.py):
    # say so, with the command that does it (by id: the name goes with the first step)
    finish = (
        f"the deletion of tenant {tenant} may be part done (its first step stops its tokens "
        "and removes its name, then its keys go in batches); run `rotator tenant delete "
        f"{tenant} --confirm {tenant}` to finish it, or a running worker does within a minute"
    )
    try:
        done = await ctx.call(
            tenant_deletion.delete_tenant, tenant, confirm=confirm, max_steps=None,
            progress=progress,
        )  # fmt: skip
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the command
        raise CliError(f"interrupted: {finish}", 130) from None
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise CliError(f"{store_unavailable(unavailability(exc))}: {finish}", 2) from None
    say(f"deleted tenant {tenant}: {done.keys_removed} keys removed")
    return done


def _read_webhook_secret(args: argparse.Namespace) -> None:
    if args.webhook_secret_stdin:
        args.webhook_secret = read_secret("webhook signing secret (whsec_..., input hidden): ")


async def _update(ctx: Context, args: argparse.Namespace) -> Any:
    changes = name_and_allowlist(args)
    if args.webhook_url is not None:
        changes["webhook_url"] = args.webhook_url
    if args.no_webhook:
        changes["webhook_url"] = None
    if args.webhook_events is not None:
        changes["webhook_events"] = [e for e in args.webhook_events.split(",") if e]
    if getattr(args, "webhook_secret", None):
        changes["webhook_secret"] = args.webhook_secret
    return await ctx.call(
        tenants.update_tenant,
        await ctx.tenant(args.tenant),
        **changes,
        webhook_allow_private=ctx.settings.webhook_allow_private,
    )


async def _client_token(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(tenants.issue_client_token, tenant, args.chosen_token)


async def _admin_token(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    return await ctx.call(tenants.issue_admin_token, tenant)


COMMANDS = [
    Command(
        "tenant", "create", "create a tenant; prints its admin and client tokens once", _create,
        args=(
            arg("name", metavar="NAME"),
            arg("--demo", action="store_true", help="masked keys, per-IP throttling"),
            CLIENT_TOKEN_FILE,
        ),
        note="the tokens are shown once: only their hashes are stored",
        prints_token=always,  # the admin token, whatever --token-file gives
        prepare=read_chosen_token,
        operator=True,
        api=("POST /v1/admin/tenants",),
    ),
    Command("tenant", "list",
            "list tenants, oldest first, with their counts (GET /v1/admin/tenants)", _list,
            operator=True, api=("GET /v1/admin/tenants",)),
    Command("tenant", "show", "a tenant's settings (GET /v1/tenant)", _show, args=(TENANT,),
            api=("GET /v1/tenant",)),
    Command("tenant", "info",
            "a tenant's settings and counts, as the operator sees it "
            "(GET /v1/admin/tenants/{id})", _info, args=(TENANT,), operator=True,
            api=("GET /v1/admin/tenants/{tenant_id}",)),
    Command("tenant", "rename", "rename a tenant (PATCH /v1/admin/tenants/{id})", _rename,
            args=(TENANT, arg("name", metavar="NAME")), operator=True,
            api=("PATCH /v1/admin/tenants/{tenant_id}",)),
    Command(
        "tenant", "suspend",
        "suspend a tenant: its client and app tokens get 403 at once, its admin token only "
        "reads; its data is kept", partial(_status, suspended=True), args=(TENANT,),
        operator=True, api=("PATCH /v1/admin/tenants/{tenant_id}",),
    ),
    Command("tenant", "resume", "resume a suspended tenant: everything works again",
            partial(_status, suspended=False), args=(TENANT,), operator=True,
            api=("PATCH /v1/admin/tenants/{tenant_id}",)),
    Command(
        "tenant", "delete",
        "delete a tenant and all its data; its tokens stop at once", _delete,
        description="Delete a tenant and all its data (DELETE /v1/admin/tenants/{id}).\n"
        "Its tokens stop working first; then every key of the tenant is removed, in\n"
        "batches, with progress on stderr. Interrupted, it is finished by the worker\n"
        "within a minute, or by running the command again with the tenant's id.",
        args=(
            TENANT,
            arg("--confirm", required=True, metavar="TENANT",
                help="repeat TENANT (or give its id) to confirm"),
        ),
        operator=True,
        api=("DELETE /v1/admin/tenants/{tenant_id}",),
    ),
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
        api=("PATCH /v1/tenant",),
    ),
    Command(
        "tenant", "client-token",
        "issue a new client token; the previous one stops working at once", _client_token,
        args=(TENANT, CLIENT_TOKEN_FILE),
        note="the client token is shown once: only its hash is stored",
        prints_token=unless_imported,
        prepare=read_chosen_token,
        api=("POST /v1/tenant/client-token",),
    ),
    Command(
        "tenant", "admin-token",
        "issue a new admin token; the previous one (and its console sessions) stop at once",
        _admin_token,
        args=(TENANT,),
        note="the admin token is shown once: only its hash is stored",
        prints_token=always,
        operator=True,
        # the operator's reissue and the tenant admin's own: one store call, one rule
        api=("POST /v1/admin/tenants/{tenant_id}/admin-token", "POST /v1/tenant/admin-token"),
    ),
]  # fmt: skip
