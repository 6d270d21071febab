"""The administrative commands' machinery: a command is declared once (its arguments,
the store call, how a person reads its result) and the parser, the store access, the
output and the error messages follow from that declaration.

- **Same rules as the API**: a command calls the store function the API handler calls,
  so every check lives in one place; a refusal names the command's own flag
  (`--max-daily: must be ...`), not the API's field (`max_daily_requests`).
- **Same JSON as the API**: the store returns the API's records (rotator/domain/
  records.py); `--json` prints exactly what the API answers, a person gets a table.
- **A tenant by id or by name**: every TENANT argument takes either.
- **A suspended tenant reads, never writes**, as through the API: a command acting for a
  tenant (every one but the operator's and the reads, READ_ACTIONS) is refused when its
  tenant is suspended, where the command names it (`await ctx.tenant(ref)`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rotator import logs, request_scope
from rotator.cli import output
from rotator.cli.common import (
    CliError,
    data_store,
    is_text,
    not_text,
    now_ms,
    say,
    unlocked_store,
    with_store,
)
from rotator.domain.audit import Actor
from rotator.domain.errors import FieldConflict, InvalidField, TenantSuspended
from rotator.request_scope import RequestScope, new_request_id
from rotator.settings import Settings
from rotator.store import token_index
from rotator.store_context import StoreContext


@dataclass(frozen=True)
class Arg:
    """One argparse argument. `dest` is the store's name for the value, so a refusal of
    that field can be said with this argument's flag."""

    flags: tuple[str, ...]
    options: dict[str, Any]
    field: str | None = None
    """The store field it sets, when that is not its dest (`--webhook-secret-stdin`)."""
    path: bool = False
    """A FILE to read: its bytes go to the OS as given, so one that is not UTF-8 (a legal
    file name) is not refused as text is (`refuse_undecodable`)."""

    @property
    def store_field(self) -> str:
        """The store's name for what it sets (its argparse dest unless `field` says)."""
        if self.field is not None:
            return self.field
        if "dest" in self.options:
            return self.options["dest"]
        first = self.flags[0]
        return first.lstrip("-").replace("-", "_")

    @property
    def shown(self) -> str:
        """How an error names it: the long flag, or the positional's metavar."""
        long = [f for f in self.flags if f.startswith("--")]
        if long:
            return long[0]
        return self.options.get("metavar") or self.flags[0].upper()

    def add_to(self, parser: Any) -> argparse.Action:
        """Add it to `parser`, or to one of its mutually exclusive groups."""
        return parser.add_argument(*self.flags, **self.options)


def arg(*flags: str, field: str | None = None, path: bool = False, **options: Any) -> Arg:
    return Arg(flags, options, field, path)


def always(args: argparse.Namespace) -> bool:
    """`prints_token` of a command that always makes a new token (`tenant create`)."""
    return True


def unless_imported(args: argparse.Namespace) -> bool:
    """`prints_token` of a command that prints the token given with --token-file, if any."""
    return args.token_file is None


TENANT = arg("tenant", metavar="TENANT", help="tenant id or name")


READ_ACTIONS = frozenset(("list", "show", "info", "usage", "deliveries"))
"""The actions that only read: the CLI's GET. Every other action of a tenant's command writes."""


class Context(StoreContext):
    """What a command's `run` gets: the store clients, the settings, the clock, and the
    tenant lookup by id or name."""

    def __init__(
        self, redis: Any, durability: Any, settings: Settings, *, tenant_write: bool = False
    ) -> None:
        self.redis = redis
        self.durability = durability
        self.settings = settings
        self.tenant_write = tenant_write
        """The command writes for a tenant: refused while that tenant is suspended."""

    @property
    def keyring(self) -> Any:
        return self.settings.keyring

    def now_ms(self) -> int:
        return now_ms()

    async def tenant(self, ref: str) -> str:
        """The id of the tenant `ref` names: its id, else its (unique) name. A command that
        writes for the tenant is refused here (exit 1) while it is suspended: the API's
        rule, tenants.check_writable."""
        from rotator.store import tenants

        tenant = await tenants.resolve_tenant(self.redis, ref)
        scope = request_scope.current()
        if scope is not None:
            scope.tenant = tenant  # named in the command's log lines
        if self.tenant_write:
            try:
                await tenants.check_writable(self.redis, tenant)
            except TenantSuspended:
                raise CliError(
                    f"tenant suspended: {ref} reads but cannot write until the operator "
                    f"resumes it (rotator tenant resume {ref})"
                ) from None
        return tenant


Run = Callable[[Context, argparse.Namespace], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    group: str
    """The resource (`tenant`, `service`, ...), or "" for a top-level command."""
    name: str
    help: str
    run: Run
    args: tuple[Arg, ...] = ()
    columns: tuple[str, ...] = ()
    """A list's table columns (default: every field of its records)."""
    keyring: bool = False
    """Opens or seals secrets: the master key is checked against the store first."""
    note: str | None = None
    """Said on stderr after success (e.g. that a token is shown once)."""
    prints_token: Callable[[argparse.Namespace], bool] | None = None
    """Whether, for this command line, the result holds a token this command made, shown
    once: if stdout closes before it is out, the message says it is lost (a token imported
    with --token-file is not: the caller has it)."""
    after: Callable[[argparse.Namespace], None] | None = None
    """Runs after success, once the result is out (e.g. advice that names the FILE given)."""
    description: str | None = None
    epilog: str | None = None
    prepare: Callable[[argparse.Namespace], None] | None = field(default=None)
    """Runs before the store is touched (e.g. read a secret from stdin)."""
    human: Callable[[Any], str] | None = None
    """How a person reads the result, when a table or `field: value` lines do not fit."""
    operator: bool = False
    """The operator's command (create, suspend or delete a tenant...): it acts on a tenant
    whether or not it is suspended."""
    api: tuple[str, ...] = ()
    """The API operations this command does, `"METHOD /path"` as the OpenAPI document
    spells them. Declared so a test (tests/unit/test_interface_coverage.py) can hold the
    CLI to the API: every operation has a command, every command names real operations,
    and every flag sets a field of the operation's request."""

    @property
    def title(self) -> str:
        """As typed after `rotator`: `key add`, or `import` for a top-level command."""
        return f"{self.group} {self.name}".strip()

    store: bool = True
    """Opens the data store; a command that does not (`webhook listen`) gets a Context
    without one and no --json."""

    @property
    def tenant_write(self) -> bool:
        return not self.operator and self.name not in READ_ACTIONS

    def flag_of(self, store_field: str) -> str:
        for a in self.args:
            if a.store_field == store_field:
                return a.shown
        return store_field


def add_commands(
    sub: argparse._SubParsersAction, commands: Sequence[Command], json_parent: Any
) -> None:
    """Add `commands` to the top-level subparsers, one subparser per group."""
    groups: dict[str, Any] = {}
    for command in commands:
        parent = sub
        if command.group:
            if command.group not in groups:
                groups[command.group] = sub.add_parser(
                    command.group,
                    help=GROUP_HELP.get(command.group, command.group),
                    aliases=GROUP_ALIASES.get(command.group, ()),
                ).add_subparsers(dest="action", metavar="ACTION", required=True)
            parent = groups[command.group]
        p = parent.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=command.epilog,
            parents=[json_parent] if command.store else [],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        by_dest = _add_args(p, command.args)
        p.set_defaults(
            func=lambda args, settings, c=command, d=by_dest: execute(c, args, settings, d),
            prints_token=command.prints_token,
        )


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    func: Callable[[argparse.Namespace, Settings], int],
    help_: str,
    *,
    description: str | None = None,
    json_help: str | None = None,
    **options: Any,
) -> argparse.ArgumentParser:
    """Add a command the Command table does not fit (it runs processes, or reports a summary
    of its own): `func(args, settings)` runs it. `json_help`: the help of its --json, which
    prints that summary as JSON (no API record: not add_commands' --json)."""
    parser = sub.add_parser(name, help=help_, description=description or help_, **options)
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(func=func)
    return parser


def _add_args(parser: argparse.ArgumentParser, args: Sequence[Arg]) -> dict[str, Arg]:
    """Add `args` to `parser`; returns them by their argparse dest. Two flags that set one
    store field (`--allow` and `--allow-any`) are mutually exclusive: given both, which one
    was meant is a guess, so the command line is refused."""
    by_field: dict[str, list[Arg]] = {}
    for a in args:
        by_field.setdefault(a.store_field, []).append(a)
    groups: dict[str, Any] = {}
    by_dest: dict[str, Arg] = {}
    for a in args:
        target: Any = parser
        if len(by_field[a.store_field]) > 1:
            if a.store_field not in groups:
                groups[a.store_field] = parser.add_mutually_exclusive_group()
            target = groups[a.store_field]
        by_dest[a.add_to(target).dest] = a
    return by_dest


GROUP_HELP = {
    "tenant": "tenants (operator)",
    "service": "a tenant's services",
    "key": "a service's provider keys",
    "app": "a tenant's client apps and their tokens",
    "webhook": "a tenant's webhook deliveries, and a local receiver to try them",
}
GROUP_ALIASES = {"webhook": ["webhooks"]}
"""Other spellings of a group (the plural people type for the API's /v1/webhooks)."""


def cli_actor() -> Actor:
    """Who a CLI command acts as: the operator (it holds the store), named by the OS user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = str(os.getuid())
    return Actor(role="operator", via="cli", credential="cli:" + user, address="cli")


def refuse_undecodable(args: argparse.Namespace, by_dest: dict[str, Arg]) -> None:
    """Every text argument is UTF-8, or the command is refused naming it (`--label: not
    UTF-8 text`) before anything is read or written. Python decodes the command line with
    surrogateescape, so bytes that are not UTF-8 arrive as lone surrogates, which no store
    write (nor the audit record of one) can encode. A FILE (`Arg.path`) is exempt: a path."""
    for dest, a in by_dest.items():
        value = getattr(args, dest, None)
        values = value if isinstance(value, list) else [value]
        if not a.path and not all(is_text(v) for v in values if isinstance(v, str)):
            raise not_text(a.shown)


def execute(
    command: Command, args: argparse.Namespace, settings: Settings, by_dest: dict[str, Arg]
) -> int:
    """Run one command: its arguments checked, store access, the call, errors in the
    command's terms, output. `by_dest`: its Args by argparse dest."""
    refuse_undecodable(args, by_dest)
    if command.prepare is not None:
        command.prepare(args)
    if not command.store:
        return asyncio.run(command.run(Context(None, None, settings), args)) or 0
    store = unlocked_store(settings, seals=True) if command.keyring else data_store(settings)
    if not logging.getLogger().handlers:  # a host process (a test) keeps its own
        # a command's output is its result: its log lines on stderr are warnings and worse
        # (all of them at DEBUG), in the configured format, with its request id and tenant
        level = (
            "DEBUG"
            if settings.log_level == "DEBUG"
            else max(settings.log_level, "WARNING", key=logging.getLevelName)
        )
        logs.configure(level, settings.log_format)
    # the command's scope: its writes are audited as the operator's, by this OS user
    scope = request_scope.open_scope(
        RequestScope(request_id=new_request_id(), address="cli", actor=cli_actor())
    )
    try:
        with store as live:
            result = with_store(
                live,
                lambda r, d: command.run(
                    Context(r, d, live, tenant_write=command.tenant_write), args
                ),
            )
    except InvalidField as exc:
        raise CliError(f"{command.flag_of(exc.field)}: {exc.problem}") from None
    except FieldConflict as exc:  # a tenant name taken, or an imported token another holds
        problem = exc.problem
        if problem == token_index.IN_USE:
            problem = f"this value {problem} by another tenant or app"
        raise CliError(f"{command.flag_of(exc.field)}: {problem}") from None
    finally:
        request_scope.close_scope(scope)
    if command.human is not None and result is not None and not args.json:
        print(command.human(result))
    else:
        output.emit(result, as_json=args.json, columns=command.columns)
    if command.note:
        say(command.note)
    if command.after is not None:
        command.after(args)
    return 0
