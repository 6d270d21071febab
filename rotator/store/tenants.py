"""Tenants: creation, settings, tokens, suspension. Every write is fsync-acknowledged
(Durability).

A tenant is one hash, `{t:T}:tenant` (schema in keys.py), plus its membership of
the global registries kr:tenants and kr:webhook_tenants. Tokens are returned once
by the function that mints them; only the SHA-256 of their secret part is stored.
The fields a delivery reads are copied into the tenant's service hashes by the same
script that writes them (tenant_update.lua), so every settings write goes through it,
suspension included. Deletion is in tenant_deletion.py.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from rotator.crypto import KeyRing, aad_for_webhook_secret
from rotator.domain import tokens
from rotator.domain.clock import iso_ms
from rotator.domain.errors import Conflict, FieldConflict, InvalidField, NotFound, TenantSuspended
from rotator.domain.models import DEFAULT_EVENTS, EVENT_TYPES
from rotator.domain.records import (
    AdminToken,
    ClientToken,
    Tenant,
    TenantCreated,
    TenantDetail,
    TenantSummary,
)
from rotator.netguard import check_webhook_url, redact_webhook_url
from rotator.store import keyring as keyring_store
from rotator.store import keys, token_index
from rotator.store.common import (
    MAX_URL_CHARS,
    allowlist,
    check_allowlist,
    check_name,
    check_text,
    flag_arg,
    text,
)
from rotator.store.connection import Durability, Redis
from rotator.store.scripts import tenants as scripts
from rotator.store.scripts.call import Durable, Plain, run
from rotator.store.scripts.tenants import TenantCounts
from rotator.store.sessions import revoke_tenant_sessions
from rotator.tuning import TENANT_COUNTS_PER_ROUND, TENANT_UPDATE_ATTEMPTS

WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = (24, 64)
"""Standard Webhooks: a signing secret is `whsec_` + base64 of 24 to 64 random bytes."""


def _created_at(h: dict[bytes, bytes]) -> str:
    return iso_ms(int(text(h, "created_ms", "0")))


def _record(tenant: str, h: dict[bytes, bytes]) -> Tenant:
    url = text(h, "wh_url")
    return Tenant(
        id=tenant,
        name=text(h, "name"),
        demo=text(h, "demo") == "1",
        suspended=text(h, "suspended") == "1",
        created_at=_created_at(h),
        ip_allowlist=allowlist(h),
        # never in clear: a URL stored before credentials were refused may hold some
        webhook_url=redact_webhook_url(url) if url else None,
        webhook_events=[t for t in text(h, "events").split(",") if t],
        webhook_secret_set=bool(h.get(b"wh_secret")),
    )


def events_field(subscribed: list[str] | tuple[str, ...]) -> str:
    """`,a,b,`: the delivery script tests membership with a plain find of `,<type>,`."""
    return "," + ",".join(subscribed) + ","


def check_events(field: str, requested: list[str]) -> list[str]:
    unknown = [t for t in requested if t not in EVENT_TYPES]
    if unknown:
        name = unknown[0] if len(unknown[0]) <= 64 else unknown[0][:64] + "…"  # never echo 1 MB
        raise InvalidField(field, f"unknown event {name!r}; known: {', '.join(EVENT_TYPES)}")
    return [t for t in EVENT_TYPES if t in requested]  # canonical order, no duplicates


def check_webhook_secret(field: str, secret: str) -> str:
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    if body == secret:
        raise InvalidField(field, f"must start with {WEBHOOK_SECRET_PREFIX}")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField(field, f"must be {WEBHOOK_SECRET_PREFIX} + base64") from None
    low, high = WEBHOOK_SECRET_BYTES
    if not low <= len(raw) <= high:
        raise InvalidField(field, f"must encode {low} to {high} bytes, not {len(raw)}")
    return secret


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


async def write_fields(
    redis: Redis,
    durability: Durability,
    tenant: str,
    fields: dict[str, str | bytes],
    *,
    set_if_absent: tuple[str, bytes] | None = None,
    also: Callable[[Any], None] | None = None,
) -> bool:
    """HSET `fields` on the tenant (and `set_if_absent` with HSETNX) through
    tenant_update.lua, which copies the delivery's fields into every service hash; in one
    durable pipeline after the commands `also` queues (they must be idempotent). Returns
    whether `set_if_absent` was set.

    The script names every service hash it copies into, so the slugs are read first; if a
    service came or went in between, the script writes nothing and is sent again."""
    for attempt in range(TENANT_UPDATE_ATTEMPTS):
        # race point: the tenant may be deleted meanwhile; the script writes nothing then
        # (-1), so no write brings back part of a deleted tenant
        slugs = sorted(m.decode() for m in await redis.smembers(keys.services(tenant)))
        written = await run(
            Durable(redis, durability, before=also if attempt == 0 else None),
            scripts.tenant_update(tenant, slugs, fields, set_if_absent),
        )
        if written == -1:
            raise NotFound("tenant not found")
        if written:
            return written == 2
    raise Conflict("the tenant's services kept changing during the update; try again")


async def create_tenant(
    redis: Redis,
    durability: Durability,
    *,
    name: str,
    demo: bool,
    client_token: str | None = None,
    now_ms: int,
) -> TenantCreated:
    """Create a tenant with fresh admin and client tokens (returned once, stored hashed).
    `client_token`: a client token of the tenant's choosing instead (imported from the
    hosted service: token_index.py), indexed before the tenant is written."""
    from rotator.store import migrations  # it imports this module

    name = check_name("name", name)
    await refuse_taken_name(redis, name)
    chosen = token_index.check("client_token", client_token) if client_token is not None else None
    # the first tenant of an empty store (a new one, or one emptied under a running API):
    # its format is recorded first, or `rotator migrate` would take it for format 1
    await migrations.record_if_empty(redis, durability)
    tenant = tokens.new_tenant_id()
    admin = tokens.mint_admin(tenant)
    client = chosen or tokens.mint_client(tenant)
    fields = {
        "name": name,
        "demo": "1" if demo else "0",
        "created_ms": str(now_ms),
        "admin": admin.secret_hash,
        "client": client.secret_hash,
        "allow": "",
        "allow_src": "[]",
        "wh_url": "",
        "events": "",
    }
    if chosen:
        fields["client_imported"] = "1"
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.tenant(tenant), mapping=fields)
    pipe.sadd(keys.TENANTS, tenant)
    owner = token_index.client_owner(tenant)
    async with token_index.claimed(redis, durability, "client_token", chosen, owner):
        await durability.execute(pipe)
    return TenantCreated(
        id=tenant,
        name=name,
        demo=demo,
        created_at=iso_ms(now_ms),
        admin_token=admin.token,
        client_token=client.token,
    )


async def get_tenant(redis: Redis, tenant: str) -> Tenant:
    h = await redis.hgetall(keys.tenant(tenant))
    if not h:
        raise NotFound("tenant not found")
    return _record(tenant, h)


async def _counts(redis: Redis, ids: list[str], now_ms: int | None) -> list[TenantCounts | None]:
    """tenant_counts.lua for each tenant of `ids` (None: no such tenant), pipelined: one call
    per tenant, each on its own slot, so it runs on a cluster too."""
    rows: list[TenantCounts | None] = []
    for start in range(0, len(ids), TENANT_COUNTS_PER_ROUND):
        chunk = ids[start : start + TENANT_COUNTS_PER_ROUND]
        rows += await Plain(redis).run_many([scripts.tenant_counts(t, now_ms) for t in chunk])
    return rows


async def list_tenants(redis: Redis, *, now_ms: int | None = None) -> list[TenantSummary]:
    """Every tenant with its counts, oldest first (`now_ms` names today; None = the store's
    clock, Redis TIME, as for deliveries). The registry, then one tenant_counts.lua per
    tenant, pipelined (a round trip per TENANT_COUNTS_PER_ROUND tenants); the server's work is
    O(services) per tenant."""
    ids = sorted(m.decode() for m in await redis.smembers(keys.TENANTS))
    found = [(c, t) for t, c in zip(ids, await _counts(redis, ids, now_ms), strict=True) if c]
    found.sort(key=lambda pair: (pair[0].created_ms, pair[1]))
    return [
        TenantSummary(
            id=tenant,
            name=c.name,
            demo=c.demo,
            suspended=c.suspended,
            created_at=iso_ms(c.created_ms),
            services=c.services,
            keys=c.keys,
            apps=c.apps,
            deliveries_today=c.deliveries_today,
        )
        for c, tenant in found
    ]


async def get_tenant_detail(redis: Redis, tenant: str, *, now_ms: int) -> TenantDetail:
    """One tenant's settings and counts, as the operator sees it."""
    record = await get_tenant(redis, tenant)
    (counts,) = await _counts(redis, [tenant], now_ms)
    if counts is None:  # deleted between the two reads
        raise NotFound("tenant not found")
    return TenantDetail(
        **msgspec.structs.asdict(record),
        services=counts.services,
        keys=counts.keys,
        apps=counts.apps,
        deliveries_today=counts.deliveries_today,
    )


async def _names(redis: Redis) -> list[tuple[str, str]]:
    """(id, name) of every tenant: one HMGET each, pipelined."""
    ids = sorted(m.decode() for m in await redis.smembers(keys.TENANTS))
    if not ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for tenant in ids:
        pipe.hget(keys.tenant(tenant), "name")
    names = await pipe.execute()
    return [(t, n.decode()) for t, n in zip(ids, names, strict=True) if n is not None]


async def refuse_taken_name(redis: Redis, name: str, tenant: str | None = None) -> None:
    """FieldConflict (409) when a tenant other than `tenant` has `name`: the operator's
    CLI finds tenants by name. Checked when the operator creates or renames one (not when a
    tenant renames itself: that would tell it other tenants' names). Not atomic: two
    operators creating one name at once may both succeed, and the name then resolves to
    neither (resolve_tenant's Conflict, naming both ids)."""
    taken = [t for t, n in await _names(redis) if n == name and t != tenant]
    if taken:
        raise FieldConflict("name", f"already used by tenant {taken[0]}")


async def resolve_tenant(redis: Redis, ref: str) -> str:
    """The id of the tenant `ref` names: an existing tenant's id, else the one tenant with
    that name (the CLI takes either). NotFound, or Conflict when the name is not unique."""
    if tokens.is_tenant_id(ref) and await redis.exists(keys.tenant(ref)):
        return ref
    matches = [tenant for tenant, name in await _names(redis) if name == ref]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no tenant with the id or name {ref!r}")
    raise Conflict(f"{len(matches)} tenants are named {ref!r}; give the id: {', '.join(matches)}")


async def admin_token_hash(redis: Redis, tenant: str) -> str | None:
    """The stored hash of the tenant's admin token secret; None for an unknown tenant."""
    value = await redis.hget(keys.tenant(tenant), "admin")
    return value.decode() if value else None


class AdminAccess(msgspec.Struct, frozen=True):
    """What the tenant-admin checks (the API's guard, the console's pages, the CLI) read,
    in one HMGET."""

    token_hash: str | None
    """The stored hash of the admin token's secret; None for an unknown tenant."""
    suspended: bool


async def admin_access(redis: Redis, tenant: str) -> AdminAccess:
    admin, suspended = await redis.hmget(keys.tenant(tenant), ["admin", "suspended"])
    return AdminAccess(token_hash=admin.decode() if admin else None, suspended=suspended == b"1")


def refuse_write_if_suspended(access: AdminAccess) -> None:
    """The one rule for a suspended tenant's writes: refused (403 `tenant suspended` in the
    API, an error page in the console, exit 1 in the CLI); reads go on."""
    if access.suspended:
        raise TenantSuspended()


async def check_writable(redis: Redis, tenant: str) -> None:
    """TenantSuspended unless the tenant may write (the CLI and the console ask this before
    a tenant's write; the API's guard has the flag already)."""
    refuse_write_if_suspended(await admin_access(redis, tenant))


async def issue_client_token(
    redis: Redis, durability: Durability, tenant: str, client_token: str | None = None
) -> ClientToken:
    """A new client token; the old one stops working with this write (only one hash is kept).
    Issued while the tenant is suspended, it is held until it is resumed (tenant_update.lua).
    `client_token`: the tenant's choice (imported, token_index.py); without it one of ours,
    which also replaces an imported one (whose index entry goes after the write)."""
    chosen = token_index.check("client_token", client_token) if client_token is not None else None
    client, held, imported = await redis.hmget(
        keys.tenant(tenant), ["client", "client_held", "client_imported"]
    )
    if client is None:
        raise NotFound("tenant not found")
    owner = token_index.client_owner(tenant)
    new = chosen or tokens.mint_client(tenant)
    fields = {"client": new.secret_hash, "client_imported": "1" if chosen else ""}
    async with token_index.claimed(redis, durability, "client_token", chosen, owner):
        await write_fields(redis, durability, tenant, fields)
    # the hash is in client_held while the tenant is suspended
    old_hash = (client or held or b"").decode()
    if imported == b"1" and old_hash and old_hash != new.secret_hash:
        # race point: a concurrent reissue may have read the same old hash; releasing twice
        # is harmless, and an entry missed by a crash here is stale (token_index.take)
        await token_index.release(redis, durability, old_hash, owner)
    return ClientToken(client_token=new.token)


async def issue_admin_token(redis: Redis, durability: Durability, tenant: str) -> AdminToken:
    """A new admin token; the old one stops working with this write, and every console
    session signed in with it ends (they are revoked after the write, so none opened
    with the old token survives)."""
    admin = tokens.mint_admin(tenant)
    await write_fields(redis, durability, tenant, {"admin": admin.secret_hash})
    await revoke_tenant_sessions(redis, tenant)
    return AdminToken(admin_token=admin.token)


async def update_tenant_status(
    redis: Redis,
    durability: Durability,
    tenant: str,
    *,
    name: str | UnsetType = UNSET,
    suspended: bool | UnsetType = UNSET,
    now_ms: int,
) -> TenantDetail:
    """The operator's changes (PATCH /v1/admin/tenants/{id}): rename, suspend or resume
    (UNSET = unchanged). Suspending takes effect with this write: tenant_update.lua empties
    the client hash every delivery compares, so its client and app tokens get `403 invalid
    token`; resuming restores it. Nothing else changes: the data is kept."""
    fields: dict[str, str | bytes] = {}
    if name is not UNSET:
        fields["name"] = new_name = check_name("name", name)
        await refuse_taken_name(redis, new_name, tenant)
    if suspended is not UNSET:
        fields["suspended"] = flag_arg("suspended", suspended)
    if fields:
        await write_fields(redis, durability, tenant, fields)
    return await get_tenant_detail(redis, tenant, now_ms=now_ms)


async def update_tenant(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    tenant: str,
    *,
    name: str | UnsetType = UNSET,
    ip_allowlist: list[str] | UnsetType = UNSET,
    webhook_url: str | UnsetType | None = UNSET,
    webhook_events: list[str] | UnsetType = UNSET,
    webhook_secret: str | UnsetType = UNSET,
    webhook_allow_private: bool = False,
) -> Tenant:
    """Apply the given settings (UNSET = unchanged). `webhook_url` is vetted here
    (rotator.netguard: http(s), no credentials, public addresses unless
    `webhook_allow_private`); None removes the webhook (the secret is kept for a later one).

    Setting a webhook where no secret exists generates one, returned once in the result
    (`webhook_secret`).
    """
    if isinstance(webhook_url, str):
        webhook_url = check_text("webhook_url", webhook_url, max_chars=MAX_URL_CHARS)
        await check_webhook_url(webhook_url, allow_private=webhook_allow_private)
    key = keys.tenant(tenant)
    current = await redis.hgetall(key)
    if not current:
        raise NotFound("tenant not found")
    fields: dict[str, str | bytes] = {}
    if name is not UNSET:
        fields["name"] = check_name("name", name)
    if ip_allowlist is not UNSET:
        fields["allow"], fields["allow_src"] = check_allowlist("ip_allowlist", ip_allowlist)

    url_before = text(current, "wh_url") or None
    url_after = url_before if webhook_url is UNSET else webhook_url
    if webhook_events is not UNSET:
        if url_after is None:
            raise InvalidField("webhook_events", "needs a webhook_url")
        fields["events"] = events_field(check_events("webhook_events", webhook_events))
    elif webhook_url is not UNSET and url_after is None:
        fields["events"] = ""  # the delivery script records nothing without a webhook
    elif url_after is not None and url_before is None:
        fields["events"] = events_field(DEFAULT_EVENTS)
    if webhook_url is not UNSET:
        fields["wh_url"] = url_after or ""

    aad = aad_for_webhook_secret(tenant)
    if webhook_secret is not UNSET:
        check_webhook_secret("webhook_secret", webhook_secret)
        fields["wh_secret"] = keyring.seal(webhook_secret.encode(), aad)
    generated = set_if_absent = None
    if webhook_secret is UNSET and url_after is not None and not current.get(b"wh_secret"):
        generated = new_webhook_secret()
        # set only if absent: of two concurrent first-time PATCHes one secret wins, and
        # only it is shown
        set_if_absent = ("wh_secret", keyring.seal(generated.encode(), aad))

    seals = "wh_secret" in fields or set_if_absent is not None
    # the key that sealed the secret is recorded with the write and again after it
    # (store/keyring.py)
    sealing = keyring_store.note_sealing(keyring) if seals else None

    def also(pipe: Any) -> None:
        if webhook_url is not UNSET:
            # a hint for the event pump, which reads wh_url itself before posting
            if url_after is None:
                pipe.srem(keys.WEBHOOK_TENANTS, tenant)
            else:
                pipe.sadd(keys.WEBHOOK_TENANTS, tenant)
        if sealing is not None:
            sealing(pipe)

    if fields or set_if_absent:
        won = await write_fields(
            redis, durability, tenant, fields, set_if_absent=set_if_absent, also=also
        )
        if seals:
            await keyring_store.sealed(redis, durability, keyring)
        if not won:
            generated = None
    updated = await get_tenant(redis, tenant)
    return msgspec.structs.replace(updated, webhook_secret=generated) if generated else updated


async def open_webhook_secret(redis: Redis, keyring: KeyRing, tenant: str) -> str | None:
    """The tenant's webhook signing secret in clear (for signing), or None when unset.

    Raises crypto.DecryptError when the stored blob cannot be opened.
    """
    blob = await redis.hget(keys.tenant(tenant), "wh_secret")
    if not blob:
        return None
    return keyring.open(blob, aad_for_webhook_secret(tenant)).decode()
