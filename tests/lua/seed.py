"""Raw fixtures for the Lua tests: records written straight in the schema of store/keys.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from rotator.crypto import KeyRing, aad_for_key
from rotator.domain import iprange, tokens
from rotator.store import keys, tenants
from rotator.store.connection import Durability

COPIED = keys.COPIED_TENANT_FIELDS


@dataclass
class Seeded:
    tenant: str
    client: tokens.ParsedToken
    key_ids: list[int] = field(default_factory=list)
    apps: dict[int, tokens.ParsedToken] = field(default_factory=dict)


async def tenant(
    r: aioredis.Redis,
    *,
    demo: bool = False,
    allow: list[str] | None = None,
    events: str = ",service.limit_reached,key.expired,service.no_active_keys,key.rotated,",
) -> Seeded:
    tid = tokens.new_tenant_id()
    minted = tokens.mint_client(tid)
    await r.hset(
        keys.tenant(tid),
        mapping={
            "name": "t",
            "demo": "1" if demo else "0",
            "client": minted.secret_hash,
            "allow": iprange.pack(iprange.parse_allowlist("ip_allowlist", allow or [])),
            "events": events,
        },
    )
    parsed = tokens.parse(minted.token)
    assert parsed is not None
    return Seeded(tid, parsed)


async def service(
    r: aioredis.Redis,
    t: Seeded,
    slug: str,
    *,
    policy: str,
    max_daily: int | None = None,
    ttl_minutes: int | None = None,
    warn_percent: int | None = None,
) -> None:
    copied = await r.hmget(keys.tenant(t.tenant), list(COPIED))
    await r.hset(
        keys.service(t.tenant, slug),
        mapping={
            "policy": policy,
            "max": "" if max_daily is None else str(max_daily),
            "warn": "" if warn_percent is None else str(warn_percent),
            "ttl_ms": "" if ttl_minutes is None else str(ttl_minutes * 60_000),
            "ids": "",
            **{"@" + f: v or b"" for f, v in zip(COPIED, copied, strict=True)},
        },
    )
    await r.sadd(keys.services(t.tenant), slug)


async def tenant_fields(r: aioredis.Redis, tenant: str, **fields: str) -> None:
    """Change tenant fields as the management store does (tenant_update.lua, with copies)."""
    await tenants.write_fields(r, Durability(), tenant, fields)


async def key(
    r: aioredis.Redis,
    ring: KeyRing,
    t: Seeded,
    slug: str,
    secret: str,
    *,
    label: str = "",
    max_daily: int | None = None,
    active: bool = True,
) -> int:
    key_id = await r.incr(keys.seq(t.tenant))
    svc = keys.service(t.tenant, slug)
    ids = (await r.hget(svc, "ids") or b"").decode()
    await r.hset(
        svc,
        mapping={
            "ids": f"{ids},{key_id}" if ids else str(key_id),
            f"l:{key_id}": label or f"key {key_id}",
            f"c:{key_id}": ring.seal(secret.encode(), aad_for_key(t.tenant, slug, key_id)),
            f"a:{key_id}": "1" if active else "0",
            f"m:{key_id}": "" if max_daily is None else str(max_daily),
        },
    )
    t.key_ids.append(key_id)
    return key_id


async def app(
    r: aioredis.Redis, t: Seeded, *, max_daily: int | None = None, allow: list[str] | None = None
) -> tokens.ParsedToken:
    app_id = await r.incr(keys.seq(t.tenant))
    minted = tokens.mint_app(t.tenant, app_id)
    await r.hset(
        keys.app(t.tenant, app_id),
        mapping={
            "name": "app",
            "token": minted.secret_hash,
            "allow": iprange.pack(iprange.parse_allowlist("ip_allowlist", allow or [])),
            "max": "" if max_daily is None else str(max_daily),
        },
    )
    parsed = tokens.parse(minted.token)
    assert parsed is not None
    t.apps[app_id] = parsed
    return parsed
