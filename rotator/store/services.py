"""Services and their provider keys. Every write is fsync-acknowledged (Durability).

A service is one hash, `{t:T}:svc:<slug>`, holding its settings and all its keys
(schema in keys.py), because the delivery script reads them together. Writes that
read-modify-write the hash (the `ids` list, the 409 check, the policy switch) are
Lua scripts, so they are atomic with respect to the delivery script.

Scripts are called through their wrappers (rotator/store/scripts/services.py) on
`Durable`: the write and its WAITAOF share one connection, as WAITAOF requires.

What listings show of the rotation (each key's state and expiry, the current key, when a
time service runs out) is computed by rotator/domain/rotation.py from the hash as of
`now_ms`, with the rules the scripts decide by.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence

import msgspec
from msgspec import UNSET, UnsetType

from rotator.crypto import DecryptError, KeyRing, aad_for_key
from rotator.domain import health, masking, rotation
from rotator.domain.clock import iso_ms, system_clock
from rotator.domain.errors import Conflict, InvalidEntry, InvalidField, NoActiveKeys, NotFound
from rotator.domain.masking import mask
from rotator.domain.models import NewKey, Policy
from rotator.domain.records import Key, KeysAdded, LastReport, Rotated, Service
from rotator.store import keyring as keyring_store
from rotator.store import keys
from rotator.store.common import (
    check_limit,
    check_name,
    check_per_minute,
    check_text,
    check_weight,
    flag_arg,
    limit_arg,
    optional_int,
    text,
)
from rotator.store.connection import Durability, Redis
from rotator.store.scripts import services as scripts
from rotator.store.scripts.call import Durable, run
from rotator.tuning import KEY_ADD_ATTEMPTS, POLICY_UPDATE_ATTEMPTS

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""A whole slug (fullmatch: `$` would let a trailing newline through, into events and keys)."""
MINUTE_MS = 60_000
MAX_TTL_MINUTES = 10 * 366 * 24 * 60
MAX_SECRET_CHARS = 4096
DEFAULT_WARNING_PERCENT = 80
"""A new service's limit_warning_percent unless the request says otherwise."""
MAX_BULK_KEYS = 1000
"""Keys in one bulk add: 1000 of the longest secrets (4096 characters) would pass the 1 MiB
body cap, so the cap on the count is the one a client meets first in practice."""
MOVE_TO = ("front", "end")
POLICY_NAMES = ", ".join(p.value for p in Policy)


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
        raise InvalidField("policy", "must be one of " + POLICY_NAMES) from None


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


def check_ttl(policy: str, ttl_minutes: int | None) -> None:
    """The key ttl rule of a new service (required for time, refused otherwise), for callers
    that check before they create (rotator/store/imports.py)."""
    _ttl_ms(policy, ttl_minutes)


def check_warning_percent(value: int | None) -> int | None:
    """service.limit_warning's threshold: 1..99 (% of the daily limit); None or 0 = off."""
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        raise InvalidField("limit_warning_percent", "must be between 1 and 99, or 0/null for none")
    return value


def check_secret(secret: str) -> str:
    return check_text("secret", secret, max_chars=MAX_SECRET_CHARS)


# --- decoding -------------------------------------------------------------------------------
def _ids(h: dict[bytes, bytes]) -> list[str]:
    return [i for i in text(h, "ids").split(",") if i]


def _cooling(h: dict[bytes, bytes]) -> dict[str, int]:
    """The service's 'cool' field (scripts/lua/lib/prelude.lua cooling_table): id -> until ms."""
    pairs = (entry.split(":") for entry in text(h, "cool").split(",") if entry)
    return {key_id: int(until_ms) for key_id, until_ms in pairs}


def _last_report(raw: str) -> LastReport | None:
    if not raw:
        return None
    r = msgspec.json.decode(raw)
    return LastReport(status=r["status"], error=r["error"], reported_at=iso_ms(r["at_ms"]))


class _Rotation:
    """A service hash's rotation as of one instant (rotator/domain/rotation.py's view)."""

    def __init__(self, h: dict[bytes, bytes], now_ms: int) -> None:
        self.policy = text(h, "policy")
        self.ttl_ms = optional_int(h, "ttl_ms") if self.policy == Policy.TIME.value else None
        self.now_ms = now_ms
        cooling = _cooling(h)
        self.slots = [
            rotation.Slot(
                int(i),
                text(h, keys.key_field("a:", i)) == "1",
                optional_int(h, keys.key_field("t:", i)),
                cooling.get(i),
            )
            for i in _ids(h)
        ]
        # the manual primary, or the time policy's key in use
        pointer = optional_int(h, "cur")
        self.current = rotation.current(self.policy, self.slots, pointer, self.ttl_ms, now_ms)
        self.run_out_ms = rotation.run_out_ms(self.policy, self.slots, pointer, self.ttl_ms, now_ms)

    def usable(self) -> int:
        return sum(rotation.usable(slot, self.ttl_ms, self.now_ms) for slot in self.slots)


def _health(h: dict[bytes, bytes]) -> health.HealthSettings:
    return health.from_hash({name: text(h, field) for name, field in health.FIELDS.items()})


def _service(slug: str, h: dict[bytes, bytes], now_ms: int) -> Service:
    ttl_ms = optional_int(h, "ttl_ms")
    r = _Rotation(h, now_ms)
    return Service(
        slug=slug,
        policy=r.policy,
        max_daily_requests=optional_int(h, "max"),
        max_requests_per_minute=optional_int(h, "rpm"),
        limit_warning_percent=optional_int(h, "warn"),
        key_ttl_minutes=None if ttl_ms is None else ttl_ms // MINUTE_MS,
        created_at=iso_ms(int(text(h, "created_ms", "0"))),
        keys=len(r.slots),
        active_keys=r.usable(),
        keys_run_out_at=None if r.run_out_ms is None else iso_ms(r.run_out_ms),
        **msgspec.structs.asdict(_health(h)),
    )


def _keys(h: dict[bytes, bytes], now_ms: int) -> list[Key]:
    r = _Rotation(h, now_ms)
    return [_key(slot, h, r) for slot in r.slots]


def _key(slot: rotation.Slot, h: dict[bytes, bytes], r: _Rotation) -> Key:
    expires = rotation.expires_at_ms(slot, r.ttl_ms)
    return Key(
        id=slot.id,
        label=text(h, keys.key_field("l:", slot.id)),
        active=slot.active,
        state=rotation.state(slot, r.ttl_ms, r.now_ms),
        max_daily_requests=optional_int(h, keys.key_field("m:", slot.id)),
        max_requests_per_minute=optional_int(h, keys.key_field("q:", slot.id)),
        weight=optional_int(h, keys.key_field("w:", slot.id)) or 1,
        key_masked=text(h, keys.key_field("k:", slot.id)),
        created_at=iso_ms(int(text(h, keys.key_field("n:", slot.id), "0"))),
        current=slot.id == r.current,
        expires_at=None if expires is None else iso_ms(expires),
        cooldown_until=iso_ms(slot.cooldown_until_ms)
        if rotation.cooling(slot, r.now_ms) and slot.cooldown_until_ms
        else None,
        disabled_reason=None if slot.active else text(h, keys.key_field("dr:", slot.id)) or None,
        failures=int(text(h, keys.key_field("f:", slot.id), "0")),
        last_report=_last_report(text(h, keys.key_field("r:", slot.id))),
    )


def _now(now_ms: int | None) -> int:
    return system_clock() if now_ms is None else now_ms


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
    max_requests_per_minute: int | None = None,
    limit_warning_percent: int | None = DEFAULT_WARNING_PERCENT,
    key_ttl_minutes: int | None = None,
    cooldown_seconds: int | None = None,
    max_cooldown_seconds: int | None = None,
    quota_reset_utc: str | None = None,
    failure_threshold: int | None = None,
    failure_window_seconds: int | None = None,
    breaker_cooldown_seconds: int | None = None,
    now_ms: int,
) -> Service:
    """Create a service (409 Conflict when the slug exists). The health settings left None
    keep their defaults (rotator/domain/health.py)."""
    check_slug(slug)
    policy = check_policy(policy)
    max_daily_requests = check_limit("max_daily_requests", max_daily_requests)
    max_requests_per_minute = check_per_minute("max_requests_per_minute", max_requests_per_minute)
    limit_warning_percent = check_warning_percent(limit_warning_percent)
    ttl_ms = _ttl_ms(policy, key_ttl_minutes)
    settings = {
        "cooldown_seconds": cooldown_seconds,
        "max_cooldown_seconds": max_cooldown_seconds,
        "quota_reset_utc": quota_reset_utc,
        "failure_threshold": failure_threshold,
        "failure_window_seconds": failure_window_seconds,
        "breaker_cooldown_seconds": breaker_cooldown_seconds,
    }
    health_pairs = health.field_pairs({k: v for k, v in settings.items() if v is not None})
    created = await run(
        Durable(redis, durability),
        scripts.service_create(
            tenant, slug, policy=policy, max_=limit_arg(max_daily_requests), ttl_ms=ttl_ms,
            created_ms=now_ms, warn=limit_arg(limit_warning_percent),
            rpm=limit_arg(max_requests_per_minute), health=health_pairs,
        ),
    )  # fmt: skip
    if not created:
        raise Conflict("service already exists")
    if policy == Policy.TIME.value:
        await _set_time_membership(redis, durability, tenant, slug, is_time=True)
    return await get_service(redis, tenant, slug, now_ms=now_ms)


async def get_service(
    redis: Redis, tenant: str, slug: str, *, now_ms: int | None = None
) -> Service:
    """A service as of `now_ms` (None: this host's clock), which decides which keys have
    expired."""
    return _service(slug, await _service_hash(redis, tenant, slug), _now(now_ms))


async def list_services(redis: Redis, tenant: str, *, now_ms: int | None = None) -> list[Service]:
    """The tenant's services by slug (one pipelined HGETALL each: one slot, one round trip)."""
    slugs = sorted(m.decode() for m in await redis.smembers(keys.services(tenant)))
    if not slugs:
        return []
    pipe = redis.pipeline(transaction=False)
    for slug in slugs:
        pipe.hgetall(keys.service(tenant, slug))
    rows = await pipe.execute()
    now_ms = _now(now_ms)
    return [_service(s, h, now_ms) for s, h in zip(slugs, rows, strict=True) if h]


async def update_service(
    redis: Redis,
    durability: Durability,
    tenant: str,
    slug: str,
    *,
    policy: str | UnsetType = UNSET,
    max_daily_requests: int | UnsetType | None = UNSET,
    max_requests_per_minute: int | UnsetType | None = UNSET,
    limit_warning_percent: int | UnsetType | None = UNSET,
    key_ttl_minutes: int | UnsetType | None = UNSET,
    cooldown_seconds: int | UnsetType | None = UNSET,
    max_cooldown_seconds: int | UnsetType | None = UNSET,
    quota_reset_utc: str | UnsetType | None = UNSET,
    failure_threshold: int | UnsetType | None = UNSET,
    failure_window_seconds: int | UnsetType | None = UNSET,
    breaker_cooldown_seconds: int | UnsetType | None = UNSET,
    now_ms: int | None = None,
) -> Service:
    """Change policy and limits (UNSET = unchanged). The slug is immutable: every key's
    ciphertext is bound to it. Switching policy starts afresh (from the first key, every
    time-policy lifetime unstarted), except that the manual primary is kept for when the
    service returns to manual (scripts/lua/service_update.lua). A health setting set to None
    goes back to its default."""
    settings = {
        "cooldown_seconds": cooldown_seconds,
        "max_cooldown_seconds": max_cooldown_seconds,
        "quota_reset_utc": quota_reset_utc,
        "failure_threshold": failure_threshold,
        "failure_window_seconds": failure_window_seconds,
        "breaker_cooldown_seconds": breaker_cooldown_seconds,
    }
    health_pairs = health.field_pairs({k: v for k, v in settings.items() if v is not UNSET})
    for _ in range(POLICY_UPDATE_ATTEMPTS):
        h = await _service_hash(redis, tenant, slug)
        read_policy = text(h, "policy")
        new_policy = read_policy if policy is UNSET else check_policy(policy)
        pairs: list[str] = list(health_pairs)
        if policy is not UNSET:
            pairs += ["policy", new_policy]
        if max_daily_requests is not UNSET:
            pairs += ["max", limit_arg(check_limit("max_daily_requests", max_daily_requests))]
        if max_requests_per_minute is not UNSET:
            rpm = check_per_minute("max_requests_per_minute", max_requests_per_minute)
            pairs += ["rpm", limit_arg(rpm)]
        if limit_warning_percent is not UNSET:
            pairs += ["warn", limit_arg(check_warning_percent(limit_warning_percent))]
        if key_ttl_minutes is not UNSET:
            pairs += ["ttl_ms", _ttl_ms(new_policy, key_ttl_minutes)]
        elif new_policy != read_policy:
            # leaving time drops the ttl; entering it needs one in this same request
            pairs += ["ttl_ms", _ttl_ms(new_policy, None)]
        if not pairs:
            return _service(slug, h, _now(now_ms))
        status = await run(
            Durable(redis, durability), scripts.service_update(tenant, slug, read_policy, pairs)
        )
        if status == 0:
            raise NotFound("service not found")
        if status == 1:
            if new_policy != read_policy:
                await _set_time_membership(
                    redis, durability, tenant, slug, is_time=new_policy == Policy.TIME.value
                )
            return await get_service(redis, tenant, slug, now_ms=now_ms)
        # status -1: a concurrent PATCH changed the policy we validated against; re-read
    raise Conflict("service is being changed concurrently; retry")


async def delete_service(
    redis: Redis, durability: Durability, tenant: str, slug: str, *, today: int,
    retention_days: int,
) -> None:  # fmt: skip
    """Delete a service with all its keys and ciphertexts, and what it counted in the usage
    history, so a new service with its slug starts from nothing (today's count included)."""
    # every day whose usage hash may exist: kept retention_days + 1, and one ahead for a
    # store clock past the caller's midnight
    days = range(today + 1, today - retention_days - 2, -1)
    deleted = await run(Durable(redis, durability), scripts.service_delete(tenant, slug, days))
    if not deleted:
        raise NotFound("service not found")
    await _set_time_membership(redis, durability, tenant, slug, is_time=False)


# --- provider keys --------------------------------------------------------------------------
def _check_new_key(key: NewKey) -> NewKey:
    """The checks of one key to add (a label of None is generated once its id is known)."""
    return NewKey(
        secret=check_secret(key.secret),
        label=None if key.label is None else check_name("label", key.label),
        max_daily_requests=check_limit("max_daily_requests", key.max_daily_requests),
        max_requests_per_minute=check_per_minute(
            "max_requests_per_minute", key.max_requests_per_minute
        ),
        weight=check_weight(key.weight),
    )


async def present_secrets(
    redis: Redis, keyring: KeyRing, tenant: str, slug: str, secrets: Sequence[str]
) -> tuple[str, dict[int, int]]:
    """Which of `secrets` the service already holds: (the ids compared, as key_add.lua's
    ARGV[2] wants them; {index in `secrets`: the id of the key holding it}). A service never
    holds one provider key twice: a copy would be handed out right after its twin was rate
    limited. Only keys whose masked form ends as one of theirs would are decrypted
    (masking.endings), each once and off the event loop, whatever the number of secrets;
    one that cannot be decrypted matches nothing."""
    h = await _service_hash(redis, tenant, slug)
    wanted = masking.endings(secrets)
    alike = {
        int(key_id): h.get(keys.key_field("c:", key_id).encode(), b"")
        for key_id in _ids(h)
        if masking.ends_in(text(h, keys.key_field("k:", key_id)), wanted)
    }
    compared = ",".join(str(i) for i in sorted(alike))
    if not alike:
        return compared, {}
    held = await asyncio.to_thread(_digests, keyring, tenant, slug, alike)
    present = {
        index: held[digest]
        for index, secret in enumerate(secrets)
        if (digest := hashlib.sha256(secret.encode()).digest()) in held
    }
    return compared, present


def _digests(
    keyring: KeyRing, tenant: str, slug: str, sealed: dict[int, bytes]
) -> dict[bytes, int]:
    """SHA-256 of each key's secret -> its id (the lowest where a store holds one twice)."""
    found: dict[bytes, int] = {}
    for key_id in sorted(sealed, reverse=True):
        try:
            secret = keyring.open(sealed[key_id], aad_for_key(tenant, slug, key_id))
        except DecryptError:
            continue
        found[hashlib.sha256(secret).digest()] = key_id
    return found


def already_held(key_id: int) -> str:
    """The refusal of a secret the service holds as `key_id` (ids are not secret)."""
    return f"already in this service (key {key_id})"


async def _add(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    tenant: str,
    slug: str,
    checked: Sequence[NewKey],
    now_ms: int,
) -> list[int]:
    """Seal and append checked keys in one script call (all or none); their ids in order.
    InvalidEntry names the first one the service already holds."""
    compared, present = await present_secrets(
        redis, keyring, tenant, slug, [k.secret for k in checked]
    )
    endings = masking.endings(k.secret for k in checked)
    # The ids are drawn before sealing because each ciphertext is bound to its id; one INCRBY
    # draws them all. It is not waited for separately: WAITAOF below covers every earlier
    # write of the AOF too. A crash before the script leaves the ids unused, nothing else.
    last = await redis.incrby(keys.seq(tenant), len(checked))
    ids = list(range(last - len(checked) + 1, last + 1))
    new = [
        scripts.NewKeyFields(
            id=key_id,
            label=key.label or f"Key {key_id}",
            sealed=keyring.seal(key.secret.encode(), aad_for_key(tenant, slug, key_id)),
            max_=limit_arg(key.max_daily_requests),
            masked=mask(key.secret),
            weight=key.weight,
            rpm=limit_arg(key.max_requests_per_minute),
        )
        for key_id, key in zip(ids, checked, strict=True)
    ]
    # the key that sealed them is recorded with the write and again after it (store/keyring.py)
    sealing = Durable(redis, durability, before=keyring_store.note_sealing(keyring, now_ms))
    for _ in range(KEY_ADD_ATTEMPTS):
        if present:
            index, key_id = min(present.items())
            raise InvalidEntry("keys", index, "secret", already_held(key_id))
        add = scripts.key_add(tenant, slug, now_ms, new, compared=compared, endings=endings)
        added = await run(sealing, add)
        if added == 0:  # deleted since it was read; the drawn ids are simply never used
            raise NotFound("service not found")
        if added > 0:
            await keyring_store.sealed(redis, durability, keyring, now_ms)
            return ids
        # a key with the same masked form came or went since they were compared: again
        compared, present = await present_secrets(
            redis, keyring, tenant, slug, [k.secret for k in checked]
        )
    raise Conflict("the service's keys kept changing while these were added: add them again")


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
    max_requests_per_minute: int | None = None,
    weight: int = 1,
    now_ms: int,
) -> Key:
    """Encrypt a provider key and append it to the service's rotation (creation order)."""
    checked = _check_new_key(
        NewKey(secret=secret, label=check_name("label", label),
               max_daily_requests=max_daily_requests,
               max_requests_per_minute=max_requests_per_minute, weight=weight)
    )  # fmt: skip
    try:
        (key_id,) = await _add(redis, durability, keyring, tenant, slug, [checked], now_ms)
    except InvalidEntry as exc:
        raise InvalidField(exc.field, exc.problem) from None
    return await get_key(redis, tenant, slug, key_id, now_ms=now_ms)


async def add_keys(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    tenant: str,
    slug: str,
    new_keys: Sequence[NewKey],
    *,
    now_ms: int,
) -> KeysAdded:
    """Encrypt and append many keys, in order, all or none: every entry is checked before
    anything is written (InvalidEntry names the first bad one), and one script adds them
    all. A key without a label is named `Key <id>`."""
    if not 1 <= len(new_keys) <= MAX_BULK_KEYS:
        raise InvalidField("keys", f"must hold 1 to {MAX_BULK_KEYS} keys, not {len(new_keys)}")
    checked: list[NewKey] = []
    seen: set[str] = set()
    for index, key in enumerate(new_keys):
        try:
            checked.append(_check_new_key(key))
        except InvalidField as exc:
            raise InvalidEntry("keys", index, exc.field, exc.problem) from None
        if checked[-1].secret in seen:  # as an import refuses it: one key counted twice
            raise InvalidEntry("keys", index, "secret", "the same secret as an earlier key")
        seen.add(checked[-1].secret)
    ids = set(await _add(redis, durability, keyring, tenant, slug, checked, now_ms))
    listed = await list_keys(redis, tenant, slug, now_ms=now_ms)
    return KeysAdded(keys=[k for k in listed if k.id in ids])


async def list_keys(
    redis: Redis, tenant: str, slug: str, *, now_ms: int | None = None
) -> list[Key]:
    """The service's keys in rotation order (masked forms only: nothing is decrypted), as of
    `now_ms` (None: this host's clock)."""
    return _keys(await _service_hash(redis, tenant, slug), _now(now_ms))


async def get_key(
    redis: Redis, tenant: str, slug: str, key_id: int, *, now_ms: int | None = None
) -> Key:
    h = await _service_hash(redis, tenant, slug)
    if keys.key_field("l:", key_id).encode() not in h:
        raise NotFound("key not found")
    return next(k for k in _keys(h, _now(now_ms)) if k.id == key_id)


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
    max_requests_per_minute: int | UnsetType | None = UNSET,
    weight: int | UnsetType = UNSET,
    now_ms: int,
    events_maxlen: int,
) -> Key:
    """Relabel, enable/disable, re-limit or re-weigh a key (UNSET = unchanged). Disabling the
    current key of a manual or time service moves `current` on (key.rotated, reason
    `disabled`); enabling a disabled or expired key restarts its lifetime; enabling,
    disabling or re-weighing restarts the weighted cycle (scripts/lua/key_update.lua)."""
    pairs: list[str] = []
    if label is not UNSET:
        pairs += [keys.key_field("l:", key_id), check_name("label", label)]
    if active is not UNSET:
        pairs += [keys.key_field("a:", key_id), flag_arg("active", active)]
    if max_daily_requests is not UNSET:
        pairs += [
            keys.key_field("m:", key_id),
            limit_arg(check_limit("max_daily_requests", max_daily_requests)),
        ]
    if max_requests_per_minute is not UNSET:
        pairs += [
            keys.key_field("q:", key_id),
            limit_arg(check_per_minute("max_requests_per_minute", max_requests_per_minute)),
        ]
    if weight is not UNSET:
        pairs += [keys.key_field("w:", key_id), str(check_weight(weight))]
    if pairs:
        updated = await run(
            Durable(redis, durability),
            scripts.key_update(
                tenant, slug, key_id, pairs, now_ms=now_ms, events_maxlen=events_maxlen
            ),
        )
        if not updated:
            raise NotFound("key not found")
    return await get_key(redis, tenant, slug, key_id, now_ms=now_ms)


async def remove_key(
    redis: Redis,
    durability: Durability,
    tenant: str,
    slug: str,
    key_id: int,
    *,
    now_ms: int,
    events_maxlen: int,
) -> None:
    """Delete a key (its ciphertext too) and take it out of rotation; deleting the current
    key of a manual or time service moves `current` on (key.rotated, reason `deleted`)."""
    removed = await run(
        Durable(redis, durability),
        scripts.key_remove(tenant, slug, key_id, now_ms=now_ms, events_maxlen=events_maxlen),
    )
    if not removed:
        raise NotFound("key not found")


async def move_key(
    redis: Redis,
    durability: Durability,
    tenant: str,
    slug: str,
    key_id: int,
    *,
    to: str,
    now_ms: int,
    events_maxlen: int,
) -> list[Key]:
    """Move a key to the `front` or the `end` of the rotation order; the keys in their new
    order. Which key is current does not change, only what comes after it
    (scripts/lua/key_move.lua)."""
    if to not in MOVE_TO:
        raise InvalidField("to", "must be front or end")
    moved = await run(
        Durable(redis, durability),
        scripts.key_move(tenant, slug, key_id, to, now_ms=now_ms, events_maxlen=events_maxlen),
    )
    if moved == -1:
        raise NotFound("service not found")
    if moved == 0:
        raise NotFound("key not found")
    return await list_keys(redis, tenant, slug, now_ms=now_ms)


# --- rotation -------------------------------------------------------------------------------
async def rotate(
    redis: Redis,
    durability: Durability,
    tenant: str,
    slug: str,
    *,
    now_ms: int,
    events_maxlen: int,
) -> Rotated:
    """Advance a manual service's primary to the next active key (scripts/lua/rotate.lua).
    A management write like the others: acknowledged once
    on disk, with the key.rotated it records."""
    call = scripts.rotate(tenant, slug, now_ms=now_ms, events_maxlen=events_maxlen)
    reply = await run(Durable(redis, durability), call)
    if reply.status == "ok":
        return Rotated(service=slug, from_key_id=reply.from_key_id, to_key_id=reply.to_key_id)
    if reply.status == "service":
        raise NotFound("unknown service")
    if reply.status == "policy":
        raise Conflict(f"rotate applies to manual policy, not {reply.policy}")
    # the service's state refuses it, like another policy: 409 (503 is for the store down)
    raise Conflict(NoActiveKeys.message)
