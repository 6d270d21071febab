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

- importing: claim the index entry first, then write the hash on the tenant or app, then
  confirm the claim (`claimed`);
- giving one up (reissue, app or tenant deletion): write the owner's new state first, then
  release the entry if it still names that owner.

A crash between leaves a stale entry. It is never trusted: `claim` checks whether the owner it
names still holds the token and takes it over if not, so a stale entry neither blocks another
tenant's import for long nor accepts a request.

An entry is "<owner>", or "<owner> <ms> <nonce>" from a claim to its confirmation. A claim
is an import between its two writes: its owner does not hold the token yet, and taking the
entry over as stale would leave two owners holding one token. So for
IMPORT_CLAIM_PENDING_MS after it was made (by the clock of the entry's node, which judges it
too) a claim is taken over by no one. Two more steps keep every moment covered:

- a takeover of a stale entry is checked again once its own claim is in place: the stale
  owner may have imported the token again in between, its entry reading as before;
- a release first turns the entry into its owner's own claim, then checks whether the owner
  holds the token again (a re-import raced it), and confirms it back or drops it.

Confirmed entries are what earlier versions wrote, so they read them still.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import NamedTuple

from rotator.domain import tokens
from rotator.domain.errors import FieldConflict, InvalidField
from rotator.store import keys
from rotator.store.connection import Durability, Redis
from rotator.store.scripts import token_index as scripts
from rotator.store.scripts.call import Durable, run
from rotator.tuning import IMPORT_CLAIM_PENDING_MS

IN_USE = "is already in use"
log = logging.getLogger(__name__)


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


@asynccontextmanager
async def claimed(
    redis: Redis, durability: Durability, field: str, chosen: Chosen | None, owner: str
) -> AsyncIterator[None]:
    """Around the write of `owner`'s hash of `chosen` (None: no imported token, nothing to
    do): the index points at `owner` before it (fsync-acknowledged) and is confirmed after.
    FieldConflict (409, naming `field`) when another tenant or app holds or is importing the
    token. A write that fails leaves the claim, stale after IMPORT_CLAIM_PENDING_MS."""
    if chosen is None:
        yield
        return
    taken = await take(redis, durability, [(chosen.secret_hash, owner)])
    if taken.refused:
        raise FieldConflict(field, IN_USE)
    yield
    await confirm(redis, durability, taken.claims)


class Taken(NamedTuple):
    refused: dict[str, str]
    """Token hash -> the owner holding it, for each claim refused."""
    claims: list[scripts.Claimed]
    """The claims made, to confirm once the owners' hashes are written."""


async def confirm(redis: Redis, durability: Durability, claims: Sequence[scripts.Claimed]) -> None:
    """Confirm claims whose owners hold their tokens now (fsync-acknowledged, one round
    trip). One taken over meanwhile (its owner waited longer than IMPORT_CLAIM_PENDING_MS
    between its writes) is logged: the index names another owner, which this one's clients
    then reach no longer."""
    if not claims:
        return
    results = await Durable(redis, durability).run_many([scripts.confirm(c) for c in claims])
    for claim, ours in zip(claims, results, strict=True):
        if not ours and owner_of(await _entry(redis, claim.token_hash)) != claim.owner:
            log.error(
                "an imported token of %s was claimed by another owner while it was written; "
                "give it a new token", describe(claim.owner),
            )  # fmt: skip


async def take(
    redis: Redis,
    durability: Durability,
    wanted: Sequence[tuple[str, str]],
    *,
    replacing: Collection[str] = (),
) -> Taken:
    """Claim each (token hash, owner) of `wanted` unless another owner holds or is importing
    that token: the refused ones, hash -> that holder, and the claims made (`confirm` them
    once the owners' hashes are written). Nothing is written when one is refused (but for a
    race, or a claim in progress: see below). A holder among the tenants `replacing` names
    (a restore is about to write them as its file has them) does not count. One read and
    one fsync-acknowledged round trip for the whole list."""
    entries, held = await _read(redis, wanted, replacing)
    if held or not wanted:
        return Taken(held, [])
    # race point: an entry may change between the read and the claims; each claim replaces
    # only the entry read (stale=), so a concurrent import wins or loses as a whole, and a
    # claim it won is refused here, as is an entry that is a claim in progress (the script
    # judges it by its node's clock); the list's other claims stand: the caller says so
    claims = [
        scripts.claim(h, owner, stale=entry, pending_ms=IMPORT_CLAIM_PENDING_MS)
        for (h, owner), entry in zip(wanted, entries, strict=True)
    ]
    results = await Durable(redis, durability).run_many(claims)
    refused: dict[str, str] = {}
    won: list[scripts.Claimed] = []
    for (token_hash, owner), entry, result in zip(wanted, entries, results, strict=True):
        if isinstance(result, scripts.Refused):
            refused[token_hash] = result.owner
            continue
        # a takeover is checked again with the claim in place: the owner read as stale may
        # have imported the token again between the read and the claim (its entry reads as
        # before), and now can no longer, so it holds the token now or never will
        previous = owner_of(entry)
        taken_over = previous not in ("", owner) and tenant_of(previous) not in replacing
        if taken_over and await _still_holds(redis, previous, token_hash):
            await run(Durable(redis, durability), scripts.swap(token_hash, result.entry, entry))
            refused[token_hash] = previous
            continue
        won.append(result)
    return Taken(refused, won)


async def _entry(redis: Redis, token_hash: str) -> str:
    raw = await redis.get(keys.token_index(token_hash))
    return raw.decode() if raw is not None else ""


async def held_elsewhere(
    redis: Redis, wanted: Sequence[tuple[str, str]], *, replacing: Collection[str] = ()
) -> dict[str, str]:
    """What `take` would refuse, read only (a restore's check before it writes)."""
    return (await _read(redis, wanted, replacing))[1]


async def _read(
    redis: Redis, wanted: Sequence[tuple[str, str]], replacing: Collection[str]
) -> tuple[list[str], dict[str, str]]:
    """Each wanted token's entry ('' for none), and the owners that hold it, other than the
    wanted one: the owner an entry names still accepts the token and is not being replaced
    (a claim in progress is the claim script's to judge)."""
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
        holder = owner_of(entry)
        if holder in ("", owner) or tenant_of(holder) in replacing:
            continue
        if await _still_holds(redis, holder, token_hash):
            held[token_hash] = holder
    return entries, held


def owner_of(entry: str) -> str:
    """The owner an entry names, confirmed ("<owner>") or claimed ("<owner> <ms> <nonce>")."""
    return entry.partition(" ")[0]


def tenant_of(owner: str) -> str:
    return owner.partition(":")[0]


def describe(owner: str) -> str:
    """An index entry's owner in words: `tenant T` (its client token) or `app A of tenant T`."""
    tenant, _, app_id = owner.partition(":")
    return f"app {app_id} of tenant {tenant}" if app_id else f"tenant {tenant}"


async def release(redis: Redis, durability: Durability, token_hash: str, owner: str) -> None:
    """Remove the entry after `owner` stopped accepting the token (fsync-acknowledged); an
    entry since claimed again, by `owner` or another, is left alone. The entry first
    becomes a claim of `owner` (no other import takes it meanwhile), then is dropped, or
    confirmed back when `owner` holds the token again (a re-import raced this release)."""
    durable = Durable(redis, durability)
    marked = await run(durable, scripts.mark(token_hash, owner))
    if marked is None:
        return
    if await _still_holds(redis, owner, token_hash):
        await confirm(redis, durability, [marked])
    else:
        await run(durable, scripts.swap(token_hash, marked.entry, ""))


async def release_all(
    redis: Redis, durability: Durability, entries: Sequence[tuple[str, str]]
) -> None:
    """Remove each (token hash, owner)'s confirmed entry, in one fsync-acknowledged round
    trip, for owners that are going whatever they hold (a tenant being deleted; tokens a
    restore gave to another tenant of its file)."""
    if entries:
        await Durable(redis, durability).run_many([scripts.swap(h, o, "") for h, o in entries])


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
