"""Client apps: per-app tokens with their own allowlist and daily limit.

An app is one hash, `{t:T}:app:<id>` (schema in keys.py), its id drawn from the
tenant's sequence and listed in `{t:T}:apps`. The app token names tenant and app
(`kra_<tenant>_<id>_<secret>`), so the delivery script finds the hash directly, and
reads everything it decides on there: the token hash, allowlist, limit and `suspended`.
Creations and deletions go through app_create.lua and app_delete.lua (hash and set in one
step); changes through app_update.lua, which writes only to an app that still exists.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from rotator.domain import tokens
from rotator.domain.clock import iso_ms
from rotator.domain.errors import NotFound
from rotator.domain.records import App, AppCreated, AppToken
from rotator.store import keys, token_index
from rotator.store.common import (
    allowlist,
    check_allowlist,
    check_limit,
    check_name,
    flag_arg,
    limit_arg,
    optional_int,
    text,
)
from rotator.store.connection import Durability, Redis
from rotator.store.scripts.call import Durable, run
from rotator.store.scripts.tenants import app_create, app_delete, app_update


def _record(app_id: str, h: dict[bytes, bytes]) -> App:
    return App(
        id=int(app_id),
        name=text(h, "name"),
        ip_allowlist=allowlist(h),
        max_daily_requests=optional_int(h, "max"),
        suspended=text(h, "suspended") == "1",
        created_at=iso_ms(int(text(h, "created_ms", "0"))),
    )


async def add_app(
    redis: Redis,
    durability: Durability,
    tenant: str,
    *,
    name: str,
    ip_allowlist: list[str] | None = None,
    max_daily_requests: int | None = None,
    app_token: str | None = None,
    now_ms: int,
) -> AppCreated:
    """Create an app and its token (returned once, stored hashed). `app_token`: a token of
    the tenant's choosing instead (imported, token_index.py), indexed before the app is
    written."""
    name = check_name("name", name)
    allow, allow_src = check_allowlist("ip_allowlist", ip_allowlist or [])
    max_daily_requests = check_limit("max_daily_requests", max_daily_requests)
    chosen = token_index.check("app_token", app_token) if app_token is not None else None
    app_id = await redis.incr(keys.seq(tenant))
    token = chosen or tokens.mint_app(tenant, app_id)
    fields = {
        "name": name,
        "token": token.secret_hash,
        "allow": allow,
        "allow_src": allow_src,
        "max": limit_arg(max_daily_requests),
        "created_ms": str(now_ms),
    }
    if chosen:
        fields["token_imported"] = "1"
    owner = token_index.app_owner(tenant, app_id)
    async with token_index.claimed(redis, durability, "app_token", chosen, owner):
        await run(Durable(redis, durability), app_create(tenant, app_id, fields))
    record = _record(str(app_id), {k.encode(): v.encode() for k, v in fields.items()})
    return AppCreated(**msgspec.structs.asdict(record), app_token=token.token)


async def list_apps(redis: Redis, tenant: str) -> list[App]:
    """The tenant's apps by id (one pipelined HGETALL each: one slot, one round trip)."""
    ids = sorted(int(m) for m in await redis.smembers(keys.apps(tenant)))
    if not ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for app_id in ids:
        pipe.hgetall(keys.app(tenant, app_id))
    rows = await pipe.execute()
    return [_record(str(i), h) for i, h in zip(ids, rows, strict=True) if h]


async def get_app(redis: Redis, tenant: str, app_id: int) -> App:
    h = await redis.hgetall(keys.app(tenant, app_id))
    if not h:
        raise NotFound("app not found")
    return _record(str(app_id), h)


async def _write(
    redis: Redis, durability: Durability, tenant: str, app_id: int, fields: dict[str, Any]
) -> None:
    """Write `fields` to an existing app (app_update.lua), fsync-acknowledged; NotFound when
    the app does not exist (deleted meanwhile included: nothing is written then)."""
    written = await run(Durable(redis, durability), app_update(tenant, app_id, fields))
    if not written:
        raise NotFound("app not found")


async def update_app(
    redis: Redis,
    durability: Durability,
    tenant: str,
    app_id: int,
    *,
    name: str | UnsetType = UNSET,
    ip_allowlist: list[str] | UnsetType = UNSET,
    max_daily_requests: int | UnsetType | None = UNSET,
    suspended: bool | UnsetType = UNSET,
) -> App:
    """Change an app (UNSET = unchanged; a null limit removes it). Each change takes effect
    with this write: the delivery script reads the app hash on every app-token request, so
    a suspended app's token gets `403 invalid token` from the next request on."""
    fields: dict[str, str] = {}
    if name is not UNSET:
        fields["name"] = check_name("name", name)
    if ip_allowlist is not UNSET:
        fields["allow"], fields["allow_src"] = check_allowlist("ip_allowlist", ip_allowlist)
    if max_daily_requests is not UNSET:
        fields["max"] = limit_arg(check_limit("max_daily_requests", max_daily_requests))
    if suspended is not UNSET:
        fields["suspended"] = flag_arg("suspended", suspended)
    if fields:
        await _write(redis, durability, tenant, app_id, fields)
    return await get_app(redis, tenant, app_id)


async def issue_app_token(
    redis: Redis, durability: Durability, tenant: str, app_id: int, app_token: str | None = None
) -> AppToken:
    """A new token for the app; the old one stops working with this write (one hash is
    kept). A suspended app stays suspended: its new token works once it is resumed.
    `app_token`: the tenant's choice (imported, token_index.py); without it one of ours,
    which also replaces an imported one (whose index entry goes after the write)."""
    chosen = token_index.check("app_token", app_token) if app_token is not None else None
    old_hash, imported = await redis.hmget(keys.app(tenant, app_id), ["token", "token_imported"])
    if old_hash is None:
        raise NotFound("app not found")
    owner = token_index.app_owner(tenant, app_id)
    token = chosen or tokens.mint_app(tenant, app_id)
    fields = {"token": token.secret_hash, "token_imported": "1" if chosen else ""}
    async with token_index.claimed(redis, durability, "app_token", chosen, owner):
        await _write(redis, durability, tenant, app_id, fields)
    await _release_old(redis, durability, owner, old_hash, imported, token.secret_hash)
    return AppToken(app_token=token.token)


async def _release_old(
    redis: Redis,
    durability: Durability,
    owner: str,
    old_hash: bytes | None,
    imported: bytes | None,
    new_hash: str = "",
) -> None:
    """After the app stopped accepting an imported token: its index entry goes (a crash
    before this leaves it stale, which token_index.take sees through)."""
    if imported == b"1" and old_hash and old_hash.decode() != new_hash:
        await token_index.release(redis, durability, old_hash.decode(), owner)


async def delete_app(redis: Redis, durability: Durability, tenant: str, app_id: int) -> None:
    """Delete an app: its token stops working with this write."""
    old_hash, imported = await redis.hmget(keys.app(tenant, app_id), ["token", "token_imported"])
    deleted = await run(Durable(redis, durability), app_delete(tenant, app_id))
    if not deleted:
        raise NotFound("app not found")
    await _release_old(redis, durability, token_index.app_owner(tenant, app_id), old_hash, imported)
