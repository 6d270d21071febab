"""What a command line's values mean: the text of a number or a limit (each an argparse
`type=`), and an update's flags as the store's keywords. The command machinery that uses
them is rotator/cli/framework.py."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.domain import numbers


def positive_int(text: str) -> int:
    """A count, an id or a limit: a whole number, at least 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def limit_or_none(text: str) -> int | None:
    """A daily limit for an update: a positive integer, or `none` to remove it."""
    if text.lower() == "none":
        return None
    return positive_int(text)


def whole_number(text: str) -> int:
    """An integer whose range the store checks (so its refusal names the field's flag), read
    as every other door reads one (ASCII digits: not int()'s '٣' or '²')."""
    value = numbers.whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return value


def whole_number_or_none(text: str) -> int | None:
    """An integer the store checks, or `none` to remove a limit."""
    return None if text.lower() == "none" else whole_number(text)


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options given, as the store's keywords of the same names (one field name from the
    command line to the API). An update's flag left out is `...`, not None, because None is a
    value an update may set (`--max-daily none` removes a limit)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not ...}


def name_and_allowlist(args: argparse.Namespace) -> dict[str, Any]:
    """--name, --allow CIDR... and --allow-any (an empty allowlist: any address) of an
    update, as the PATCH body of a tenant or an app holds them: only what was given."""
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    if args.ip_allowlist is not None:
        changes["ip_allowlist"] = args.ip_allowlist
    if args.allow_any:
        changes["ip_allowlist"] = []
    return changes
