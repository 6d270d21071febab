"""Services and their provider keys. Every write is fsync-acknowledged (Durability).

A service is one hash, `{t:T}:svc:<slug>`, holding its settings and all its keys
(schema in keys.py), because the delivery script reads them together. Writes that
read-modify-write the hash (the `ids` list, the 409 check, the policy switch) are
Lua scripts, so they are atomic with respect to the delivery script.

Scripts go through the durability pipeline as EVAL with their source, not
EVALSHA: management writes are rare, EVAL can never answer NOSCRIPT, and the
write and its WAITAOF then share one connection as WAITAOF requires.
"""

from __future__ import annotations

import re

from msgspec import UNSET, UnsetType

from rotator.crypto import KeyRing, aad_for_key
from rotator.domain.clock import iso_ms
from rotator.domain.errors import Conflict, InvalidField, NoActiveKeys, NotFound
from rotator.domain.masking import mask
from rotator.domain.models import Policy
from rotator.domain.records import Key, Rotated, Service
from rotator.store import keys
from rotator.store.common import (
    check_limit,
    check_name,
    limit_arg,
    optional_int,
    queue_script,
    text,
)
from rotator.store.connection import Durability, Redis

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""A whole slug (fullmatch: `$` would let a trailing newline through, into events and keys)."""
MINUTE_MS = 60_000
MAX_TTL_MINUTES = 10 * 366 * 24 * 60
MAX_SECRET_CHARS = 4096
_POLICY_RETRIES = 5


# --- input checks ---------------------------------------------------------------------------
def check_slug(slug: str) -> str:
    if not SLUG.fullmatch(slug):
        raise InvalidField(
            "slug", "1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        )
    return slug


def check_policy(policy: str) -> str:
    try:
        return Policy(policy).value
    except ValueError:
        raise InvalidField("policy", "must be one of manual, time, usage") from None


def _ttl_ms(policy: str, ttl_minutes: int | None) -> str:
    """The stored ttl_ms: required (positive) for time, refused for the other policies."""
    if policy != Policy.TIME.value:
        if ttl_minutes is not None:
            raise InvalidField("key_ttl_minutes", "only a time policy has a key ttl")
        return ""
    if ttl_minutes is None:
        raise InvalidField("key_ttl_minutes", "required for the time policy")
    if isinstance(ttl_minutes, bool) or not isinstance(ttl_minutes, int):
        raise InvalidField("key_ttl_minutes", "must be a positive integer")
    if not 1 <= ttl_minutes <= MAX_TTL_MINUTES:
        raise InvalidField("key_ttl_minutes", f"must be between 1 and {MAX_TTL_MINUTES}")
    return str(ttl_minutes * MINUTE_MS)


def check_secret(secret: str) -> str:
    secret = secret.strip()
    if not secret:
        raise InvalidField("secret", "must not be empty")
    if len(secret) > MAX_SECRET_CHARS:
        raise InvalidField("secret", f"at most {MAX_SECRET_CHARS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise InvalidField("secret", "must not contain control characters")
    return secret


# --- decoding -------------------------------------------------------------------------------
def _ids(h: dict[bytes, bytes]) -> list[str]:
    return [i for i in text(h, "ids").split(",") if i]


def _service(slug: str, h: dict[bytes, bytes]) -> Service:
    ids = _ids(h)
    ttl_ms = optional_int(h, "ttl_ms")
    return Service(
        slug=slug,
        policy=text(h, "policy"),
        max_daily_requests=optional_int(h, "max"),
        key_ttl_minutes=None if ttl_ms is None else ttl_ms // MINUTE_MS,
        created_at=iso_ms(int(text(h, "created_ms", "0"))),
        keys=len(ids),
        active_keys=sum(text(h, f"a:{i}") == "1" for i in ids),
    )


def _key(key_id: str, h: dict[bytes, bytes]) -> Key:
    return Key(
        id=int(key_id),
        label=text(h, f"l:{key_id}"),
        active=text(h, f"a:{key_id}") == "1",
        max_daily_requests=optional_int(h, f"m:{key_id}"),
        key_masked=text(h, f"k:{key_id}"),
        created_at=iso_ms(int(text(h, f"n:{key_id}", "0"))),
        current=text(h, "cur") == key_id,
    )


async def _service_hash(redis: Redis, tenant: str, slug: str) -> dict[bytes, bytes]:
    h = await redis.hgetall(keys.service(tenant, slug))
    if not h:
        raise NotFound("service not found")
    return h


async def _set_time_membership(
    redis: Redis, durability: Durability, tenant: str, slug: str, *, is_time: bool
) -> None:
    # kr:time_services is global (another cluster slot), so it cannot be written by the
    # tenant's script; it is written right after, and the sweep re-reads the policy anyway
    pipe = redis.pipeline(transaction=False)
    member = keys.time_service_member(tenant, slug)
    if is_time:
        pipe.sadd(keys.TIME_SERVICES, member)
    else:
        pipe.srem(keys.TIME_SERVICES, member)
    await durability.execute(pipe)


# --- services -------------------------------------------------------------------------------
async def create_service(
    redis: Redis,
    durability: Durability,
    tenant: str,
    *,
    slug: str,
    policy: str,
    max_daily_requests: int | None = None,
    key_ttl_minutes: int | None = None,
    now_ms: int,
) -> Service:
    """Create a service (409 Conflict when the slug exists)."""
    check_slug(slug)
    policy = check_policy(policy)
    max_daily_requests = check_limit("max_daily_requests", max_daily_requests)
    ttl_ms = _ttl_ms(policy, key_ttl_minutes)
    pipe = redis.pipeline(transaction=False)
    queue_script(
        pipe,
        "service_create",
        [keys.service(tenant, slug), keys.services(tenant), keys.tenant(tenant)],
        [slug, policy, limit_arg(max_daily_requests), ttl_ms, now_ms],
    )
    (created,) = await durability.execute(pipe)
    if not created:
        raise Conflict("service already exists")
    if policy == Policy.TIME.value:
        await _set_time_membership(redis, durability, tenant, slug, is_time=True)
    return Service(
        slug=slug,
        policy=policy,
        max_daily_requests=max_daily_requests,
        key_ttl_minutes=key_ttl_minutes,
        created_at=iso_ms(now_ms),
        keys=0,
        active_keys=0,
    )


async def get_service(redis: Redis, tenant: str, slug: str) -> Service:
    return _service(slug, await _service_hash(redis, tenant, slug))


async def list_services(redis: Redis, tenant: str) -> list[Service]:
    """The tenant's services by slug (one pipelined HGETALL each: one slot, one round trip)."""
    slugs = sorted(m.decode() for m in await redis.smembers(keys.services(tenant)))
    if not slugs:
        return []
    pipe = redis.pipeline(transaction=False)
    for slug in slugs:
        pipe.hgetall(keys.service(tenant, slug))
    rows = await pipe.execute()
    return [_service(s, h) for s, h in zip(slugs, rows, strict=True) if h]


async def update_service(
    redis: Redis,
    durability: Durability,
    tenant: str,
    slug: str,
    *,
    policy: str | UnsetType = UNSET,
    max_daily_requests: int | UnsetType | None = UNSET,
    key_ttl_minutes: int | UnsetType | None = UNSET,
) -> Service:
    """Change policy and limits (UNSET = unchanged). The slug is immutable: every key's
    ciphertext is bound to it. Switching policy resets the rotation state (current key)."""
    for _ in range(_POLICY_RETRIES):
        h = await _service_hash(redis, tenant, slug)
        read_policy = text(h, "policy")
        new_policy = read_policy if policy is UNSET else check_policy(policy)
        pairs: list[str] = []
        if policy is not UNSET:
            pairs += ["policy", new_policy]
        if max_daily_requests is not UNSET:
            pairs += ["max", limit_arg(check_limit("max_daily_requests", max_daily_requests))]
        if key_ttl_minutes is not UNSET:
            pairs += ["ttl_ms", _ttl_ms(new_policy, key_ttl_minutes)]
        elif new_policy != read_policy:
            # leaving time drops the ttl; entering it needs one in this same request
            pairs += ["ttl_ms", _ttl_ms(new_policy, None)]
        if not pairs:
            return _service(slug, h)
        pipe = redis.pipeline(transaction=False)
        queue_script(pipe, "service_update", [keys.service(tenant, slug)], [read_policy, *pairs])
        (status,) = await durability.execute(pipe)
        if status == 0:
            raise NotFound("service not found")
        if status == 1:
            if new_policy != read_policy:
                await _set_time_membership(
                    redis, durability, tenant, slug, is_time=new_policy == Policy.TIME.value
                )
            return await get_service(redis, tenant, slug)
        # status -1: a concurrent PATCH changed the policy we validated against; re-read
    raise Conflict("service is being changed concurrently; retry")


async def delete_service(redis: Redis, durability: Durability, tenant: str, slug: str) -> None:
    """Delete a service with all its keys and ciphertexts."""
    pipe = redis.pipeline(transaction=False)
    queue_script(
        pipe, "service_delete", [keys.service(tenant, slug), keys.services(tenant)], [slug]
    )
    (deleted,) = await durability.execute(pipe)
    if not deleted:
        raise NotFound("service not found")
    await _set_time_membership(redis, durability, tenant, slug, is_time=False)


# --- provider keys --------------------------------------------------------------------------
async def add_key(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    tenant: str,
    slug: str,
    *,
    label: str,
    secret: str,
    max_daily_requests: int | None = None,
    now_ms: int,
) -> Key:
    """Encrypt a provider key and append it to the service's rotation (creation order)."""
    label = check_name("label", label)
    secret = check_secret(secret)
    max_daily_requests = check_limit("max_daily_requests", max_daily_requests)
    if not await redis.exists(keys.service(tenant, slug)):
        raise NotFound("service not found")
    # The id is drawn before sealing because the ciphertext is bound to it. This INCR is not
    # waited for separately: WAITAOF below covers every earlier write of the AOF too.
    key_id = await redis.incr(keys.seq(tenant))
    sealed = keyring.seal(secret.encode(), aad_for_key(tenant, slug, key_id))
    masked = mask(secret)
    pipe = redis.pipeline(transaction=False)
    queue_script(
        pipe,
        "key_add",
        [keys.service(tenant, slug)],
        [key_id, label, sealed, limit_arg(max_daily_requests), now_ms, masked],
    )
    (added,) = await durability.execute(pipe)
    if not added:  # deleted since the check above; the drawn id is simply never used
        raise NotFound("service not found")
    return Key(
        id=key_id,
        label=label,
        active=True,
        max_daily_requests=max_daily_requests,
        key_masked=masked,
        created_at=iso_ms(now_ms),
        current=False,
    )


async def list_keys(redis: Redis, tenant: str, slug: str) -> list[Key]:
    """The service's keys in rotation order (masked forms only: nothing is decrypted)."""
    h = await _service_hash(redis, tenant, slug)
    return [_key(i, h) for i in _ids(h)]


async def get_key(redis: Redis, tenant: str, slug: str, key_id: int) -> Key:
    h = await _service_hash(redis, tenant, slug)
    if f"l:{key_id}".encode() not in h:
        raise NotFound("key not found")
    return _key(str(key_id), h)


async def update_key(
    redis: Redis,
    durability: Durability,
    tenant: str,
    slug: str,
    key_id: int,
    *,
    label: str | UnsetType = UNSET,
    active: bool | UnsetType = UNSET,
    max_daily_requests: int | UnsetType | None = UNSET,
) -> Key:
    """Relabel, enable/disable or re-limit a key (UNSET = unchanged)."""
    pairs: list[str] = []
    if label is not UNSET:
        pairs += [f"l:{key_id}", check_name("label", label)]
    if active is not UNSET:
        if not isinstance(active, bool):
            raise InvalidField("active", "must be true or false")
        pairs += [f"a:{key_id}", "1" if active else "0"]
    if max_daily_requests is not UNSET:
        pairs += [f"m:{key_id}", limit_arg(check_limit("max_daily_requests", max_daily_requests))]
    if pairs:
        pipe = redis.pipeline(transaction=False)
        queue_script(pipe, "key_update", [keys.service(tenant, slug)], [key_id, *pairs])
        (updated,) = await durability.execute(pipe)
        if not updated:
            raise NotFound("key not found")
    return await get_key(redis, tenant, slug, key_id)


async def remove_key(
    redis: Redis, durability: Durability, tenant: str, slug: str, key_id: int
) -> None:
    """Delete a key (its ciphertext too) and take it out of rotation."""
    pipe = redis.pipeline(transaction=False)
    queue_script(pipe, "key_remove", [keys.service(tenant, slug)], [key_id])
    (removed,) = await durability.execute(pipe)
    if not removed:
        raise NotFound("key not found")


# --- rotation -------------------------------------------------------------------------------
async def rotate(
    redis: Redis, durability: Durability, tenant: str, slug: str, *, events_maxlen: int
) -> Rotated:
    """Advance a manual service's primary to the next active key (scripts/lua/rotate.lua).
    A management write like the others: acknowledged once
    on disk, with the key.rotated it records."""
    pipe = redis.pipeline(transaction=False)
    queue_script(
        pipe,
        "rotate",
        [keys.tenant(tenant), keys.service(tenant, slug), keys.events(tenant)],
        [slug, events_maxlen],
    )
    (reply,) = await durability.execute(pipe)
    status = reply[0]
    if status == b"ok":
        return Rotated(service=slug, from_key_id=int(reply[1]), to_key_id=int(reply[2]))
    if status == b"service":
        raise NotFound("unknown service")
    if status == b"policy":
        raise Conflict(f"rotate applies to manual policy, not {reply[1].decode()}")
    raise NoActiveKeys()
