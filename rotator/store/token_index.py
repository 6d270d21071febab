"""Imported tokens: a tenant's client token or an app's token chosen by the tenant (the one it
used with the hosted service), and the index that finds its tenant without a scan.

Our tokens name their tenant in a prefix (`krc_<tenant>_...`); an imported one is an opaque
string, so `kr:tok:<sha256 of the token>` says whose it is ("<tenant>" or "<tenant>:<app>").
Only hashes are stored, as for ours: the tenant (or app) hash holds SHA-256 of the whole token
in the field the delivery script compares, so the script cannot tell the two kinds apart and
revocation is as immediate as for ours.

One key per token rather than one global hash: lookups spread over a cluster's nodes instead
of all reaching the node of one hot key, and claiming a token is an atomic step on its own
key. The index is global (its own cluster slot), so a write of an imported token is two
durable steps on two slots. Their order keeps one rule through a crash between them: the index may
point at an owner that does not accept the token (harmless: the delivery script compares the
hash and answers 403), never the reverse (an owner accepting a token nobody can find).

- importing: claim the index entry first, then write the hash on the tenant or app;
- giving one up (reissue, app or tenant deletion): write the owner's new state first, then
  release the entry if it still names that owner.

A crash between leaves a stale entry. It is never trusted: `claim` checks whether the owner it
names still holds the token and takes it over if not, so a stale entry neither blocks another
tenant's import for long nor accepts a request. An entry is "<owner> <ms claimed>": for
IMPORT_CLAIM_PENDING_MS after its claim an entry whose owner does not hold the token yet is
an import between its two writes, not a stale one, and another import of the value is
refused; taking it over would leave both owners holding one token.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

from rotator.domain import tokens
from rotator.domain.errors import FieldConflict, InvalidField
from rotator.store import keys
from rotator.store.connection import Durability, Redis
from rotator.store.scripts import token_index as scripts
from rotator.store.scripts.call import Durable
from rotator.tuning import IMPORT_CLAIM_PENDING_MS

IN_USE = "is already in use"


class Chosen(NamedTuple):
    """A token value a tenant chose, checked."""

    token: str
    secret_hash: str


def client_owner(tenant: str) -> str:
    return tenant


def app_owner(tenant: str, app_id: int | str) -> str:
    return f"{tenant}:{app_id}"


def check(field: str, value: str) -> Chosen:
    """InvalidField (400, naming `field`) unless `value` may be imported (domain/tokens.py)."""
    if not isinstance(value, str):
        raise InvalidField(field, "must be a string")
    problem = tokens.imported_problem(value)
    if problem:
        raise InvalidField(field, problem)
    return Chosen(value, tokens.hash_imported(value))


async def _still_holds(redis: Redis, owner: str, token_hash: str) -> bool:
    """Whether `owner` (an index entry) accepts the token: its stored hash is this one. A
    suspended tenant holds its client token too (in client_held): it works again on resume."""
    tenant, _, app_id = owner.partition(":")
    if not tokens.valid_tenant_id(tenant):
        return False
    if app_id:
        stored = [await redis.hget(keys.app(tenant, app_id), "token")]
    else:
        stored = await redis.hmget(keys.tenant(tenant), ["client", "client_held"])
    return any(s is not None and tokens.same_hash(s, token_hash) for s in stored)


async def claim(
    redis: Redis, durability: Durability, field: str, chosen: Chosen, owner: str, *, now_ms: int
) -> None:
    """Point the index at `owner` before its hash is written (fsync-acknowledged).
    FieldConflict (409, naming `field`) when another tenant or app holds the token."""
    if await take(redis, durability, [(chosen.secret_hash, owner)], now_ms=now_ms):
        raise FieldConflict(field, IN_USE)


async def take(
    redis: Redis,
    durability: Durability,
    wanted: Sequence[tuple[str, str]],
    *,
    replacing: Collection[str] = (),
    now_ms: int,
) -> dict[str, str]:
    """Point the index at each (token hash, owner) of `wanted` unless another owner holds
    that token; returns the refused ones, hash -> that holder. Nothing is written when one
    is refused (but for a race: see below). A holder among the tenants `replacing` names
    (a restore is about to write them as its file has them) does not count. One read and
    one fsync-acknowledged round trip for the whole list."""
    entries, held = await _read(redis, wanted, replacing, now_ms)
    if held or not wanted:
        return held
    # race point: an entry may change between the read and the claims; each claim replaces
    # only the entry read (stale=), so a concurrent import wins or loses as a whole, and a
    # claim it won is refused here (the list's other claims stand: the caller says so)
    claims = [
        scripts.claim(h, owner, stale=entry, now_ms=now_ms)
        for (h, owner), entry in zip(wanted, entries, strict=True)
    ]
    results = await Durable(redis, durability).run_many(claims)
    return {
        token_hash: result.owner
        for (token_hash, _), result in zip(wanted, results, strict=True)
        if not result.won
    }


async def held_elsewhere(
    redis: Redis,
    wanted: Sequence[tuple[str, str]],
    *,
    replacing: Collection[str] = (),
    now_ms: int,
) -> dict[str, str]:
    """What `take` would refuse, read only (a restore's check before it writes)."""
    return (await _read(redis, wanted, replacing, now_ms))[1]


def _parse(entry: str) -> tuple[str, int]:
    """An entry's owner and the ms it was claimed at (0 for an entry of format 1, which had
    no time: it is old enough to be stale)."""
    owner, _, claimed_ms = entry.partition(" ")
    return owner, int(claimed_ms or 0)


async def _read(
    redis: Redis, wanted: Sequence[tuple[str, str]], replacing: Collection[str], now_ms: int
) -> tuple[list[str], dict[str, str]]:
    """Each wanted token's entry ('' for none), and the owners that hold it, other than the
    wanted one: the owner an entry names still accepts the token, or was claimed less than
    IMPORT_CLAIM_PENDING_MS ago (it is about to), and is not being replaced."""
    if len({token_hash for token_hash, _ in wanted}) != len(wanted):
        raise ValueError("a token hash is wanted twice: only one owner can hold it")
    if not wanted:
        return [], {}
    pipe = redis.pipeline(transaction=False)
    for token_hash, _ in wanted:
        pipe.get(keys.token_index(token_hash))
    entries = [e.decode() if e is not None else "" for e in await pipe.execute()]
    held: dict[str, str] = {}
    for (token_hash, owner), entry in zip(wanted, entries, strict=True):
        holder, claimed_ms = _parse(entry)
        if holder in ("", owner) or tenant_of(holder) in replacing:
            continue
        pending = now_ms - claimed_ms < IMPORT_CLAIM_PENDING_MS
        if pending or await _still_holds(redis, holder, token_hash):
            held[token_hash] = holder
    return entries, held


def tenant_of(owner: str) -> str:
    return owner.partition(":")[0]


def describe(owner: str) -> str:
    """An index entry's owner in words: `tenant T` (its client token) or `app A of tenant T`."""
    tenant, _, app_id = owner.partition(":")
    return f"app {app_id} of tenant {tenant}" if app_id else f"tenant {tenant}"


async def release(redis: Redis, durability: Durability, token_hash: str, owner: str) -> None:
    """Remove the entry after `owner` stopped accepting the token (fsync-acknowledged); an
    entry since claimed by another owner is left alone."""
    await release_all(redis, durability, [(token_hash, owner)])


async def release_all(
    redis: Redis, durability: Durability, entries: Sequence[tuple[str, str]]
) -> None:
    """`release` of each (token hash, owner), in one fsync-acknowledged round trip."""
    if entries:
        await Durable(redis, durability).run_many([scripts.release(h, o) for h, o in entries])


class Held(NamedTuple):
    token_hash: str
    owner: str


async def of_tenant(redis: Redis, tenant: str) -> list[Held]:
    """Every imported token a tenant and its apps hold (tenant deletion releases them)."""
    found: list[Held] = []
    client, held, imported = await redis.hmget(
        keys.tenant(tenant), ["client", "client_held", "client_imported"]
    )
    token_hash = client or held  # in client_held while the tenant is suspended
    if imported == b"1" and token_hash:
        found.append(Held(token_hash.decode(), client_owner(tenant)))
    app_ids = sorted(int(m) for m in await redis.smembers(keys.apps(tenant)))
    if app_ids:
        pipe = redis.pipeline(transaction=False)
        for app_id in app_ids:
            pipe.hmget(keys.app(tenant, app_id), ["token", "token_imported"])
        for app_id, (token_hash, imported) in zip(app_ids, await pipe.execute(), strict=True):
            if imported == b"1" and token_hash:
                found.append(Held(token_hash.decode(), app_owner(tenant, app_id)))
    return found
