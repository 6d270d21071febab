"""`rotator service ...`: a tenant's services, their rotation and their usage."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from rotator.cli import output
from rotator.cli.framework import TENANT, Command, Context, arg
from rotator.cli.values import (
    given,
    limit_or_none,
    positive_int,
    whole_number,
    whole_number_or_none,
)
from rotator.domain import health
from rotator.domain.health import REPORT_CLASSES
from rotator.domain.models import Policy
from rotator.domain.records import ServiceUsage
from rotator.store import services
from rotator.store.usage import service_usage

SLUG = arg("slug", metavar="SLUG", help="the service's slug, e.g. openai")
POLICIES = [p.value for p in Policy]


async def _list(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(services.list_services, await ctx.tenant(args.tenant))


async def _show(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(services.get_service, await ctx.tenant(args.tenant), args.slug)


HEALTH = tuple(health.FIELDS)
"""The service's key health settings, each an option of create and update (--cooldown-seconds)."""


async def _create(ctx: Context, args: argparse.Namespace) -> Any:
    fields = given(
        args, "slug", "policy", "max_daily_requests", "max_requests_per_minute",
        "limit_warning_percent", "key_ttl_minutes",
    )  # fmt: skip
    # a health setting left out, or given as `default`, keeps the service default
    health = {name: v for name, v in given(args, *HEALTH).items() if v is not None}
    return await ctx.call(
        services.create_service, await ctx.tenant(args.tenant), **fields, **health
    )


async def _update(ctx: Context, args: argparse.Namespace) -> Any:
    changes = given(
        args, "policy", "max_daily_requests", "max_requests_per_minute", "limit_warning_percent",
        "key_ttl_minutes", *HEALTH,
    )  # fmt: skip
    return await ctx.call(
        services.update_service, await ctx.tenant(args.tenant), args.slug, **changes
    )


async def _delete(ctx: Context, args: argparse.Namespace) -> Any:
    tenant = await ctx.tenant(args.tenant)
    await ctx.call(services.delete_service, tenant, args.slug)


async def _rotate(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(services.rotate, await ctx.tenant(args.tenant), args.slug)


async def _usage(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(
        service_usage,
        await ctx.tenant(args.tenant),
        args.slug,
        days=args.days,
    )


def _usage_table(usage: ServiceUsage) -> str:
    """One row a day: the date, the service's total, each key's count, then the day's reports
    by the provider's status class."""
    labels = [f"{k.key_id} {k.label}" for k in usage.days[0].keys] if usage.days else []
    classes = [f"reports {c}" for c in REPORT_CLASSES]
    rows = [
        {"date": day.date, "total": day.total, **{
            label: k.deliveries for label, k in zip(labels, day.keys, strict=True)
        }, **{f"reports {c}": day.reports.get(c, 0) for c in REPORT_CLASSES}}
        for day in usage.days
    ]  # fmt: skip
    return output.table(rows, ["date", "total", *labels, *classes])


def _setting(text: str, kind: type = int) -> Any:
    """A health setting's value: `default` (None: back to the default), else the value (the
    store checks its range)."""
    if text.lower() == "default":
        return None
    if kind is str:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _health_args(*, update: bool = False) -> tuple[Any, ...]:
    def one(name: str, said: health.Described) -> Any:
        default = getattr(health.DEFAULTS, name)
        number = isinstance(default, int)  # else a time of day, HH:MM
        return arg("--" + name.replace("_", "-"), dest=name, default=...,
                   type=partial(_setting, kind=int if number else str),
                   metavar="N|default" if number else "HH:MM|default",
                   help=f"{said.meaning} (default {default})"
                   + ("; default: back to it" if update else ""))  # fmt: skip

    return tuple(one(name, said) for name, said in health.DESCRIBED.items())


def percent_or_none(text: str) -> int | None:
    """A limit warning percentage: 1-99 (the store checks the range), or `none`/0 for off."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _warn(*, update: bool = False) -> Any:
    default = ... if update else services.DEFAULT_WARNING_PERCENT
    return arg("--warn-percent", dest="limit_warning_percent", type=percent_or_none,
               default=default, metavar="N|none",
               help="record service.limit_warning when today's count reaches N%% of the daily "
               f"limit (1-99; none or 0: no warning; default {services.DEFAULT_WARNING_PERCENT}"
               " for a new service)")  # fmt: skip


def max_daily(help_: str, *, update: bool = False) -> Any:
    """--max-daily: a daily request limit; an update's `none` removes it."""
    if update:
        return arg("--max-daily", dest="max_daily_requests", type=limit_or_none, default=...,
                   metavar="N|none", help=help_ + "; none removes it")  # fmt: skip
    return arg("--max-daily", dest="max_daily_requests", type=positive_int, metavar="N",
               help=help_)  # fmt: skip


def per_minute(whose: str, *, update: bool = False) -> Any:
    """--max-per-minute: a per-minute limit (sliding 60 s; the store checks the range)."""
    if update:
        return arg("--max-per-minute", dest="max_requests_per_minute",
                   type=whole_number_or_none, default=..., metavar="N|none",
                   help=f"requests per minute {whose} (any 60 s); none removes it")  # fmt: skip
    return arg("--max-per-minute", dest="max_requests_per_minute", type=whole_number,
               metavar="N", help=f"requests per minute {whose} (any 60 s)")  # fmt: skip


COMMANDS = [
    Command("service", "list", "list a tenant's services", _list, args=(TENANT,),
            api=("GET /v1/services",)),
    Command("service", "show", "one service", _show, args=(TENANT, SLUG),
            api=("GET /v1/services/{slug}",)),
    Command(
        "service", "create", "create a service", _create,
        args=(
            TENANT, SLUG,
            arg("--policy", required=True, choices=POLICIES, help="how keys are rotated"),
            max_daily("daily request limit of the service (UTC days)"),
            per_minute("of the service"),
            _warn(),
            arg("--ttl-minutes", dest="key_ttl_minutes", type=positive_int, metavar="N",
                help="key lifetime (time policy only, required there)"),
            *_health_args(),
        ),
        api=("POST /v1/services",),
    ),
    Command(
        "service", "update", "change a service's policy or limits (the slug cannot change)",
        _update,
        args=(
            TENANT, SLUG,
            arg("--policy", choices=POLICIES, default=..., help="how keys are rotated"),
            max_daily("daily request limit of the service", update=True),
            per_minute("of the service", update=True),
            _warn(update=True),
            arg("--ttl-minutes", dest="key_ttl_minutes", type=limit_or_none, default=...,
                metavar="N|none", help="key lifetime (time policy); none removes it"),
            *_health_args(update=True),
        ),
        api=("PATCH /v1/services/{slug}",),
    ),
    Command(
        "service", "delete", "delete a service with all its keys and its usage history",
        _delete, args=(TENANT, SLUG), api=("DELETE /v1/services/{slug}",),
    ),
    Command(
        "service", "rotate", "move a manual service to its next active key", _rotate,
        args=(TENANT, SLUG), api=("POST /v1/services/{slug}/rotate",),
    ),
    Command(
        "service", "usage", "deliveries per key per UTC day, newest first", _usage,
        args=(
            TENANT, SLUG,
            arg("--days", type=positive_int, default=7, help="how many days (default 7)"),
        ),
        human=_usage_table,
        api=("GET /v1/services/{slug}/usage",),
    ),
]  # fmt: skip
