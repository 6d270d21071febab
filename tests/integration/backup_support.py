"""Helpers of the backup tests: a store populated through the API, and an image of a store
(every key's type, value and expiry) to compare one with another."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rotator.crypto import KeyRing
from rotator.domain.clock import FakeClock, iso_ms, system_clock
from rotator.domain.records import DeliveryAttempt
from rotator.settings import Settings
from rotator.store import keys, services, sessions, tenants, webhooks
from rotator.store.backup import dump
from rotator.store.connection import Durability
from rotator.store.events import EventStreams
from tests.integration.cli_support import base_env
from tests.integration.management import (
    Tenant,
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

DAY_MINUTES = 24 * 60
EXPIRY_TOLERANCE_MS = 5_000
"""Expiry instants before and after a restore may differ by the time between two reads."""
LEFT_OUT = (":session:", ":sessions", ":gcra:", ":rid:")
"""Per-tenant kinds a backup leaves out (store/backup/selection.py), as they appear in names."""


@dataclass
class Populated:
    tenants: list[Tenant]
    secrets: dict[str, set[str]] = field(default_factory=dict)
    """slug -> secrets of the first tenant's keys."""
    app_token: str = ""


def cli_env(settings: Settings, master_key: str, **extra: str) -> dict[str, str]:
    """The `rotator` environment for the test's backend (single node or cluster)."""
    env = base_env(
        ROTATOR_REDIS_URL=settings.redis_url or "",
        ROTATOR_MASTER_KEY=master_key,
        ROTATOR_DATA_DIR=str(settings.data_dir),
        **extra,
    )
    if settings.redis_cluster:
        env["ROTATOR_REDIS_CLUSTER"] = "1"
    return env


async def populate(client: httpx.AsyncClient, redis: Any, clock: FakeClock) -> Populated:
    """Three tenants through the API: services of each policy with keys (one disabled),
    an app with its limit, a webhook and allowlist, deliveries over three UTC days (usage
    hashes with their expiry), events (a consumer group, every entry acknowledged), a
    delivery log, a console session and demo throttle state (both left out of backups)."""
    acme = await new_tenant(client, "acme")
    beta = await new_tenant(client, "beta")
    demo = await new_tenant(client, "demo", demo=True)
    done = Populated(tenants=[acme, beta, demo])
    r = await client.patch(
        "/v1/tenant",
        json={
            "webhook_url": "http://127.0.0.1:9/hook",
            "webhook_events": ["key.delivered", "key.rotated"],
            "ip_allowlist": ["127.0.0.0/8", "::1"],
        },
        headers=acme.auth,
    )
    assert r.status_code == 200, r.text
    for slug, policy, extra in (
        ("openai", "usage", {"max_daily_requests": 1000}),
        ("stripe", "manual", {}),
        ("anthropic", "time", {"key_ttl_minutes": 10 * DAY_MINUTES}),
    ):
        await new_service(client, acme, slug, policy, **extra)
        for n in range(2):
            secret = f"sk-{slug}-{n}-{os.urandom(6).hex()}"
            await new_key(client, acme, slug, secret=secret, label=f"{slug} {n}")
            done.secrets.setdefault(slug, set()).add(secret)
    app = await new_app(client, acme, "web", max_daily_requests=500, ip_allowlist=["127.0.0.1"])
    done.app_token = app["app_token"]
    await new_service(client, beta, "openai", "usage")
    key = await new_key(client, beta, "openai", secret="sk-beta-0123456789abcdef")
    await new_key(client, beta, "openai", secret="sk-beta-disabled-0123456789")
    r = await client.patch(f"/v1/services/openai/keys/{key['id']}", json={"active": False},
                           headers=beta.auth)  # fmt: skip
    assert r.status_code == 200, r.text
    await new_service(client, demo, "openai", "usage")
    await new_key(client, demo, "openai", secret="sk-demo-0123456789abcdef")

    for day in range(3):
        for slug in ("openai", "stripe", "anthropic"):
            for _ in range(day + 2):
                assert (await deliver(client, acme.client_token, slug)).status_code == 200
        by_app = {"service": "openai", "app_token": app["app_token"]}
        r = await client.get("/v1/next", params=by_app)
        assert r.status_code == 200, r.text
        assert (await deliver(client, beta.client_token)).status_code == 200
        assert (await deliver(client, demo.client_token)).status_code == 200  # gcra state
        if day < 2:
            clock.advance(minutes=DAY_MINUTES)

    streams = EventStreams(redis)
    await streams.ensure_group(acme.id)
    read = await streams.read_new(acme.id, "pump-1", 10_000)
    assert read, "deliveries to a subscribed tenant record events"
    await streams.ack(acme.id, [entry_id for entry_id, _ in read])
    for n in range(3):
        attempt = DeliveryAttempt(
            event_id=f"evt_{acme.id}_{n}-0", type="key.delivered", attempts=1,
            status_code=200, error=None, outcome="delivered", updated_at=iso_ms(clock()),
        )  # fmt: skip
        await webhooks.log_attempt(redis, acme.id, attempt)
    await sessions.open_tenant_session(
        redis, acme.id, admin_hash=await tenants.admin_token_hash(redis, acme.id),
        now_ms=clock(), idle_ms=60_000_000, max_ms=60_000_000,
    )  # fmt: skip
    return done


async def image(redis: Any) -> dict[bytes, tuple[str, Any, int | None]]:
    """Every key of the store: (type, value, expiry instant in ms or None)."""
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    found: dict[bytes, tuple[str, Any, int | None]] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        pttl = await redis.pttl(key)
        found[key] = (kind, await _value(redis, key, kind), None if pttl < 0 else now_ms + pttl)
    return found


async def _value(redis: Any, key: bytes, kind: str) -> Any:
    if kind == "string":
        return await redis.get(key)
    if kind == "hash":
        return await redis.hgetall(key)
    if kind == "set":
        return await redis.smembers(key)
    if kind == "zset":
        return await redis.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return await redis.lrange(key, 0, -1)
    assert kind == "stream", kind
    info = await redis.xinfo_stream(key)
    groups = [
        (g["name"], g["last-delivered-id"], g["pending"]) for g in await redis.xinfo_groups(key)
    ]
    # a backup holds the entries a group has yet to deliver (with no pending entry here)
    start = b"(" + min(g[1] for g in groups) if groups else b"-"
    return (
        await redis.xrange(key, min=start),
        info["last-generated-id"],
        info.get("entries-added"),
        info.get("max-deleted-entry-id"),
        groups,
    )


def backed_up(full: dict[bytes, tuple[str, Any, int | None]]) -> dict[bytes, Any]:
    """What of an image a backup holds: without the kinds left out on purpose, the
    operator's sessions and sign-in throttles, kr:restore (a restore's own mark), kr:schema
    (the header records the format read; a restore records the format it leaves), the
    operator's audit log and the unauthenticated-request counts (this installation's own
    history: each tenant's audit log is in the backup with the tenant)."""
    return {
        k: v
        for k, v in full.items()
        if not (k.startswith(b"{t:") and any(part.encode() in k for part in LEFT_OUT))
        and not k.startswith((b"kr:opsession:", b"kr:signin_fail:", b"kr:authfail:"))
        and k not in (keys.RESTORE.encode(), keys.SCHEMA.encode(), keys.AUDIT.encode())
    }


def assert_same(before: dict[bytes, Any], after: dict[bytes, Any]) -> None:
    """Same keys, types and values; expiry instants within EXPIRY_TOLERANCE_MS."""
    missing, extra = set(before) - set(after), set(after) - set(before)
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    for key, (kind, value, expires) in before.items():
        kind_after, value_after, expires_after = after[key]
        assert (kind_after, value_after) == (kind, value), (key, value, value_after)
        if expires is None:
            assert expires_after is None, key
        else:
            assert expires_after is not None, key
            assert abs(expires_after - expires) <= EXPIRY_TOLERANCE_MS, key


TENANT_NAMES = itertools.count()


async def seed_tenants(redis: Any, ring: KeyRing, count: int, *, now_ms: int) -> list[str]:
    """`count` tenants written by the store functions (quicker than the API): each with a
    usage service, two keys and a time service, plus a webhook on the first."""
    d = Durability()
    ids = []
    for _ in range(count):
        name = f"t{next(TENANT_NAMES)}"  # unique: a test may seed more than once
        tenant = (await tenants.create_tenant(redis, d, name=name, demo=False, now_ms=now_ms)).id
        await services.create_service(redis, d, tenant, slug="openai", policy="usage",
                                      now_ms=now_ms)  # fmt: skip
        await services.create_service(redis, d, tenant, slug="clock", policy="time",
                                      key_ttl_minutes=60, now_ms=now_ms)  # fmt: skip
        for k in range(2):
            await services.add_key(redis, d, ring, tenant, "openai", label=f"k{k}",
                                   secret=f"sk-{tenant}-{k}-0123456789", now_ms=now_ms)  # fmt: skip
        ids.append(tenant)
    if ids:
        await tenants.update_tenant(
            redis, d, ring, ids[0], webhook_url="https://example.com/h", webhook_allow_private=True
        )
    return ids


async def make_backup(redis: Any, ring: KeyRing, path: Path) -> dump.BackupReport:
    """A backup file written in-process (as `rotator backup` writes it)."""
    return await dump.write_backup(redis, ring, path, clock=system_clock)


async def tenant_keys_in(redis: Any) -> list[bytes]:
    return [k async for k in redis.scan_iter(match="{t:*", count=1000)]
