"""Administrative commands: tenants, services, keys, apps, rewrap (store functions, no HTTP)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from rotator.cli.common import data_store, emit, now_ms, say, unlocked_store, with_store
from rotator.settings import Settings


async def _existing_tenant(redis: Any, tenant: str) -> None:
    from rotator.store import tenants

    await tenants.get_tenant(redis, tenant)  # NotFound: never write into a tenant that is not


def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import tenants

    with data_store(settings) as live:
        created = with_store(
            live,
            lambda r, d: tenants.create_tenant(
                r, d, name=args.name, demo=args.demo, now_ms=now_ms()
            ),
        )
    emit(
        args,
        {
            "tenant": created.record.id,
            "name": created.record.name,
            "demo": created.record.demo,
            "admin_token": created.admin_token,
            "client_token": created.client_token,
        },
    )
    say("the tokens are shown once: only their hashes are stored")
    return 0


def cmd_tenant_list(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import tenants

    with data_store(settings) as live:
        records = with_store(live, lambda r, d: tenants.list_tenants(r))
    if args.json:
        print(json.dumps([{"tenant": t.id, "name": t.name, "demo": t.demo} for t in records]))
    else:
        for t in records:
            print(f"{t.id}  {t.name}{'  (demo)' if t.demo else ''}")
    return 0


def cmd_service_create(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import services

    async def work(redis: Any, durability: Any) -> Any:
        await _existing_tenant(redis, args.tenant)
        return await services.create_service(
            redis,
            durability,
            args.tenant,
            slug=args.slug,
            policy=args.policy,
            max_daily_requests=args.max_daily,
            key_ttl_minutes=args.ttl_minutes,
            now_ms=now_ms(),
        )

    with data_store(settings) as live:
        svc = with_store(live, work)
    emit(
        args,
        {
            "service": svc.slug,
            "policy": svc.policy,
            "max_daily_requests": svc.max_daily_requests,
            "key_ttl_minutes": svc.key_ttl_minutes,
        },
    )
    return 0


def read_secret() -> str:
    """The provider key: from stdin when piped, else a hidden prompt. Never from argv."""
    if sys.stdin.isatty():
        return getpass.getpass("provider key (input hidden): ")
    return sys.stdin.read()


def cmd_key_add(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import services

    secret = read_secret().strip()

    async def work(redis: Any, durability: Any, keyring: Any) -> Any:
        await _existing_tenant(redis, args.tenant)
        return await services.add_key(
            redis,
            durability,
            keyring,
            args.tenant,
            args.slug,
            label=args.label,
            secret=secret,
            max_daily_requests=args.max_daily,
            now_ms=now_ms(),
        )

    with unlocked_store(settings, seals=True) as live:
        key = with_store(live, lambda r, d: work(r, d, live.keyring))
    emit(
        args,
        {
            "key_id": key.id,
            "label": key.label,
            "key_masked": key.masked,
            "max_daily_requests": key.max_daily_requests,
        },
    )
    return 0


def cmd_app_create(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import apps

    async def work(redis: Any, durability: Any) -> Any:
        await _existing_tenant(redis, args.tenant)
        return await apps.add_app(
            redis,
            durability,
            args.tenant,
            name=args.name,
            ip_allowlist=args.allow,
            max_daily_requests=args.max_daily,
            now_ms=now_ms(),
        )

    with data_store(settings) as live:
        created = with_store(live, work)
    emit(
        args,
        {
            "app_id": created.record.id,
            "name": created.record.name,
            "ip_allowlist": ",".join(created.record.ip_allowlist),
            "max_daily_requests": created.record.max_daily_requests,
            "app_token": created.app_token,
        },
    )
    say("the app token is shown once: only its hash is stored")
    return 0


def cmd_rewrap(args: argparse.Namespace, settings: Settings) -> int:
    from rotator.store import rewrap

    with unlocked_store(settings, seals=True) as live:
        ring = live.keyring
        say(
            f"re-encrypting every stored secret under master key {ring.primary_id!r} "
            f"(fingerprint {ring.primary_fingerprint})"
        )
        report = with_store(
            live, lambda r, d: rewrap.rewrap_all(r, d, ring, progress=lambda line: say(line))
        )
    emit(
        args,
        {
            "rewrapped": report.rewrapped,
            "already_current": report.current,
            "vanished": report.vanished,
            "failed": len(report.failed),
        },
    )
    for where in report.failed:
        say(f"cannot decrypt {where} with any configured master key")
    return 1 if report.failed else 0
