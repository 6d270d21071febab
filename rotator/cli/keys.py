"""`rotator key ...`: a service's provider keys. Secrets are read from stdin, a hidden prompt or
a file, never from the command line; only their masked forms are ever printed."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from rotator.cli import output
from rotator.cli.common import (
    CliError,
    deletion_advice,
    file_name,
    read_secret,
    read_text_file,
    say,
)
from rotator.cli.framework import TENANT, Command, Context, arg
from rotator.cli.services import SLUG, max_daily, per_minute
from rotator.cli.values import given, positive_int, whole_number
from rotator.domain import key_file
from rotator.domain.errors import InvalidEntry, InvalidField
from rotator.domain.records import Key, KeysAdded
from rotator.store import services

KEY_ID = arg("key_id", metavar="KEY_ID", type=positive_int, help="the key's id")
COLUMNS = (
    "id", "label", "state", "current", "failures", "last_report", "max_daily_requests",
    "max_requests_per_minute", "weight", "key_masked", "expires_at", "created_at",
)  # fmt: skip


def state_words(key: Key) -> str:
    """A key's state as a person reads it: `cooling_down until <T>`, `disabled (<reason>)`."""
    if key.state == "cooling_down" and key.cooldown_until:
        return f"cooling_down until {key.cooldown_until}"
    if key.state == "disabled" and key.disabled_reason:
        return f"disabled ({key.disabled_reason})"
    return key.state


def report_words(key: Key) -> str | None:
    r = key.last_report
    if r is None:
        return None
    status = "no response" if r.status == 0 else str(r.status)
    return f"{status}{' ' + r.error if r.error else ''} at {r.reported_at}"


def keys_table(keys: list[Key]) -> str:
    """The keys with their state in words and the last report in one cell."""
    rows = [
        {**{name: getattr(k, name) for name in COLUMNS}, "state": state_words(k),
         "last_report": report_words(k)}
        for k in keys
    ]  # fmt: skip
    return output.table(rows, COLUMNS)


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(services.list_keys, await ctx.tenant(args.tenant), args.slug)


def _read(args: argparse.Namespace) -> None:
    args.secret = read_secret("provider key (input hidden): ")


async def _add(ctx: Context, args: argparse.Namespace) -> Any:
    fields = given(
        args, "label", "secret", "max_daily_requests", "max_requests_per_minute", "weight"
    )
    return await ctx.call(services.add_key, await ctx.tenant(args.tenant), args.slug, **fields)


def _read_file(args: argparse.Namespace) -> None:
    """Read and parse FILE before the store is touched: a bad line stops everything. The
    text is never printed; an error names the line and the field."""
    name = file_name(args.file)
    text = read_text_file(args.file)
    try:
        args.lines = key_file.parse(text)
    except key_file.InvalidLine as exc:
        raise CliError(f"{name}: {exc.message}") from None
    if not args.lines:
        raise CliError(f"{name}: no keys in it (blank lines and # comments are skipped)")


async def _add_file(ctx: Context, args: argparse.Namespace) -> Any:
    name = file_name(args.file)
    try:
        return await ctx.call(
            services.add_keys,
            await ctx.tenant(args.tenant),
            args.slug,
            [line.key for line in args.lines],
        )
    except InvalidEntry as exc:
        raise CliError(f"{name}: {key_file.line_error(args.lines, exc).message}") from None
    except InvalidField as exc:
        if exc.field != "keys":
            raise
        raise CliError(f"{name}: {exc.problem}") from None


def _deletion_note(args: argparse.Namespace) -> None:
    say(deletion_advice(args.file))  # as an import's: the file holds the keys in clear


def _added(result: KeysAdded) -> str:
    return keys_table(result.keys)


async def _change(ctx: Context, args: argparse.Namespace, **changes: Any) -> Any:
    return await ctx.call(
        services.update_key, await ctx.tenant(args.tenant), args.slug, args.key_id, **changes
    )


async def _update(ctx: Context, args: argparse.Namespace) -> Any:
    changes = given(args, "label", "max_daily_requests", "max_requests_per_minute", "weight")
    return await _change(ctx, args, **changes)


async def _move(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(
        services.move_key, await ctx.tenant(args.tenant), args.slug, args.key_id, to=args.to
    )


async def _delete(ctx: Context, args: argparse.Namespace) -> Any:
    await ctx.call(services.remove_key, await ctx.tenant(args.tenant), args.slug, args.key_id)


FILE_FORMAT = """\
FILE holds one key a line; blank lines and lines starting with # are skipped:

  sk-proj-aaaa...                     the secret alone: labelled "Key <id>"
  sk-proj-bbbb...<TAB>Backup          a secret and its label
  sk-proj-cccc...<TAB>Batch<TAB>500   ... and its own daily limit
  sk-proj-dddd...,Spare,1000          commas instead, on a line without a TAB

All or nothing: if any line is refused (its number and field are named), no key is added.
The file's content is never printed."""

COMMANDS = [
    Command("key", "list", "a service's keys in rotation order (masked)", _list,
            args=(TENANT, SLUG), human=keys_table, api=("GET /v1/services/{slug}/keys",)),
    Command(
        "key", "add",
        "add a provider key; the secret is read from stdin, or a hidden prompt on a terminal",
        _add,
        args=(
            TENANT, SLUG,
            arg("--label", required=True, help="a name for people, e.g. Primary"),
            max_daily("daily request limit of this key"),
            per_minute("of this key"),
            arg("--weight", type=whole_number, default=1, metavar="N",
                help="its share under the weighted policy (1-1000, default 1)"),
        ),
        keyring=True,
        prepare=_read,
        api=("POST /v1/services/{slug}/keys",),
    ),
    Command(
        "key", "add-file",
        f"add many keys from a file, all or nothing (at most {services.MAX_BULK_KEYS})",
        _add_file,
        args=(
            TENANT, SLUG,
            arg("file", metavar="FILE", path=True,
                help="the file of keys, one a line; - reads stdin"),
        ),
        keyring=True,
        prepare=_read_file,
        human=_added,
        epilog=FILE_FORMAT,
        after=_deletion_note,
        api=("POST /v1/services/{slug}/keys/bulk",),
    ),
    Command(
        "key", "update", "relabel a key or change its limits or weight", _update,
        args=(
            TENANT, SLUG, KEY_ID,
            arg("--label", default=..., help="a name for people"),
            max_daily("daily request limit of this key", update=True),
            per_minute("of this key", update=True),
            arg("--weight", type=whole_number, default=..., metavar="N",
                help="its share under the weighted policy (1-1000)"),
        ),
        api=("PATCH /v1/services/{slug}/keys/{key_id}",),
    ),
    Command("key", "enable",
            "put a key back into rotation (a disabled or expired key's lifetime restarts; what "
            "reports left, a 401/403's disabling, failures, a cooldown, is cleared)",
            partial(_change, active=True), args=(TENANT, SLUG, KEY_ID),
            api=("PATCH /v1/services/{slug}/keys/{key_id}",)),
    Command("key", "disable", "take a key out of rotation (kept, can be enabled again)",
            partial(_change, active=False), args=(TENANT, SLUG, KEY_ID),
            api=("PATCH /v1/services/{slug}/keys/{key_id}",)),
    Command(
        "key", "move",
        "move a key to the front or the end of the rotation (the current key stays current)",
        _move,
        args=(
            TENANT, SLUG, KEY_ID,
            arg("--to", required=True, choices=services.MOVE_TO, help="where it goes"),
        ),
        human=keys_table,
        api=("POST /v1/services/{slug}/keys/{key_id}/move",),
    ),
    Command("key", "delete", "delete a key and its encrypted secret", _delete,
            args=(TENANT, SLUG, KEY_ID), api=("DELETE /v1/services/{slug}/keys/{key_id}",)),
]  # fmt: skip
