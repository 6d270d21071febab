"""`rotator import TENANT FILE`: an export of services and keys (CSV or JSON) into a tenant,
all or nothing (rotator/store/imports.py). The file is read and parsed before the store is
touched; its secrets are sealed as they are written and never printed."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.cli import output
from rotator.cli.common import CliError, deletion_advice, file_name, read_text_file, say
from rotator.cli.framework import TENANT, Command, Context, arg
from rotator.domain import import_file
from rotator.domain.errors import ImportIncomplete, InvalidRows
from rotator.domain.records import Imported
from rotator.store import imports


def _read_file(args: argparse.Namespace) -> None:
    """Read and parse FILE before the store is touched: a bad row stops everything."""
    text = read_text_file(args.file)
    try:
        args.rows = import_file.parse(text)
    except InvalidRows as exc:
        raise CliError(f"{file_name(args.file)}: {exc.message}") from None
    del text


async def _import(ctx: Context, args: argparse.Namespace) -> Any:
    try:
        return await ctx.call(imports.import_keys, await ctx.tenant(args.tenant), args.rows)
    except InvalidRows as exc:
        raise CliError(f"{file_name(args.file)}: {exc.message}") from None
    except ImportIncomplete as exc:
        # the store failed: exit 2, as any store failure, with what remains (not retryable
        # as it is: a second run refuses the rows whose keys remain)
        raise CliError(exc.message, 2 if exc.store_unavailable else 1) from None
    finally:
        args.rows = None  # the secrets, as read: sealed in the store now, or refused


def _human(result: Imported) -> str:
    rows = [
        {"slug": s.slug, "policy": s.policy, "service": "created" if s.created else "existed",
         "keys_added": len(s.key_ids)}
        for s in result.services
    ]  # fmt: skip
    return (
        output.table(rows, ("slug", "policy", "service", "keys_added"))
        + f"\n{result.keys_added} key{'s' if result.keys_added != 1 else ''} imported"
    )


def _execute_note(args: argparse.Namespace) -> None:
    say(deletion_advice(args.file))


IMPORT_FORMAT = """\
FILE is CSV with a header row, or a JSON array of objects (when it starts with `[`):

  slug,policy,limit,label,secret
  openai,usage,10000,Primary,sk-proj-aaaa...
  openai,,,Backup,sk-proj-bbbb...
  stripe,manual,,Live,sk_live_cccc...

  [{"slug": "openai", "policy": "usage", "limit": 10000, "label": "Primary",
    "secret": "sk-proj-aaaa..."}]

slug and secret are required; policy (and key_ttl_minutes for `time`) creates a service
that does not exist; limit is the service's daily limit (empty = none); label names the
key (empty = `Key <id>`). A service that exists gets the keys; a row that disagrees with
it (another policy, limit or ttl) is refused: an import never changes a service. All or
nothing: every refused row is named by its number (CSV: its line, the header is line 1;
JSON: its position from 1) and nothing is imported. Secrets are never printed.
docs/migration.md has more."""

COMMANDS = [
    Command(
        "", "import",
        "import services and keys from an export (CSV or JSON), all or nothing",
        _import,
        args=(
            TENANT,
            arg("file", metavar="FILE", path=True, help="the export, CSV or JSON; - reads stdin"),
        ),
        keyring=True,
        prepare=_read_file,
        human=_human,
        epilog=IMPORT_FORMAT,
        after=_execute_note,
        api=("POST /v1/import",),
    ),
]  # fmt: skip
