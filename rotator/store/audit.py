"""The audit log: a record of every management write, of every authenticated write a rule
refused, and the reading of it (GET /v1/audit, `rotator audit`, the console's Activity).

Where a record is written, and what "atomic with the change" means for each:

- A tenant's write (every store function taking `durability` and a `tenant`): the record is
  built before the function runs and rides in the first script of that write on the
  tenant's slot (rotator/store/scripts/audit.py), which appends it to `{t:T}:audit` in the
  same run iff it changed something: the record exists iff the change happened.
- A refused attempt (a domain error from the store function: a bad field, a missing
  resource, a suspended tenant...): nothing changed, so the record is appended on its own.
- A write no tenant script carries (an operator's tenant creation or deletion, whose keys
  span slots, or a write that is a plain pipeline): the record is appended right after the
  write is acknowledged, so a crash in between can lose a record but never make one up.
- The operator's log `kr:audit` (another slot) gets a copy of each record right after; the
  tenant's own log is the authority for its tenant, the operator's log for writes that
  outlive their tenant (its deletion).

Unauthenticated requests are not recorded one by one (anyone could fill the log): they are
counted per client IP per minute (`count_unauthenticated`, kr:authfail:<minute>).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from rotator import request_scope
from rotator.domain import audit as rules
from rotator.domain.audit import Actor
from rotator.domain.clock import iso_ms
from rotator.domain.errors import InvalidField, RotatorError, StoreUnavailable
from rotator.domain.records import AuditPage, AuditRecord
from rotator.request_scope import RequestScope
from rotator.store import keys
from rotator.store.connection import Redis, as_str, is_unavailable
from rotator.store.scripts.audit import MS_PER_DAY, PENDING, Pending, append
from rotator.store.scripts.call import Plain

T = TypeVar("T")
log = logging.getLogger("rotator.audit")

CONTEXT_NAMES = frozenset(
    (
        "redis",
        "durability",
        "keyring",
        "now_ms",
        "today",
        "events_maxlen",
        "retention_days",
        "tenant",
        "webhook_allow_private",
    )
)
"""Parameters of a store function that are not the request's fields: the caller's context,
the tenant (the record's own field) and the operator's settings passed along."""

MAX_PAGE = 200
SCAN_BATCH = 200
SCAN_CAP = 5000
"""Entries one page reads at most while filters skip them (then `next_cursor` goes on)."""
AUTH_FAILURE_TTL_S = 2 * 86_400

_CURSOR = re.compile(r"\d{1,20}-\d{1,20}")


class _Stored(msgspec.Struct, kw_only=True, frozen=True):
    """A record as its stream entry holds it (the AuditRecord without its id)."""

    at: str
    tenant: str | None
    role: str
    via: str
    credential: str
    address: str
    action: str
    resource: str
    fields: dict[str, Any]
    outcome: str
    reason: str | None
    request_id: str | None


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(_Stored).decode


def _stored(
    actor: Actor,
    scope: RequestScope,
    *,
    tenant: str | None,
    action: str,
    resource: str,
    fields: dict[str, Any],
    now_ms: int,
    reason: str | None = None,
) -> bytes:
    return _ENCODE(
        _Stored(
            at=iso_ms(now_ms),
            tenant=tenant,
            **msgspec.structs.asdict(actor),  # role, via, credential, address
            action=action,
            resource=resource,
            fields=fields,
            outcome=rules.OK if reason is None else rules.REFUSED,
            reason=None if reason is None else rules.redact_text(reason),
            request_id=scope.request_id or None,
        )
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _describe(
    fn: Callable[..., Any], n_clients: int, args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[str | None, str, dict[str, Any]]:
    """(tenant, resource, fields) of a store call: the positional ids after the tenant make
    the resource (`openai/7`), every other argument is a field (redacted). A secret by its
    name (an imported `client_token` passed positionally) is never an id: it is redacted."""
    names = list(inspect.signature(fn).parameters)[n_clients:]
    positional = dict(zip(names, args, strict=False))
    tenant = positional.get("tenant", kwargs.get("tenant"))
    ids = {
        n: v
        for n, v in positional.items()
        if n != "tenant" and _is_id(v) and not rules.is_secret_name(n)
    }
    if not ids and _is_id(kwargs.get("slug")):
        ids = {"slug": kwargs["slug"]}  # a service created: named by the slug it asks for
    fields = {
        n: rules.redact(n, v)
        for n, v in {**positional, **kwargs}.items()
        if n not in CONTEXT_NAMES and n not in ids and v is not msgspec.UNSET  # UNSET: unchanged
    }
    resource = "/".join(str(v) for v in ids.values())
    return (tenant if isinstance(tenant, str) else None), resource, fields


async def recorded(
    ctx: Any,
    fn: Callable[..., Awaitable[T]],
    clients: Sequence[Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    actor: Actor,
    scope: RequestScope,
) -> T:
    """Run the management write `fn` with its audit record (see the module's docstring)."""
    tenant, resource, fields = _describe(fn, len(clients), args, kwargs)
    now_ms = ctx.now_ms()
    settings = ctx.settings
    retention_ms = settings.audit_retention_days * MS_PER_DAY

    def record(tenant: str | None, resource: str, reason: str | None = None) -> bytes:
        return _stored(
            actor,
            scope,
            tenant=tenant,
            action=fn.__name__,
            resource=resource,
            fields=fields,
            now_ms=now_ms,
            reason=reason,
        )

    pending = Pending(
        tenant, record(tenant, resource), now_ms, retention_ms, settings.events_maxlen
    )
    token = PENDING.set(pending)
    try:
        result = await fn(*clients, *args, **kwargs)
    except RotatorError as exc:
        if isinstance(exc, StoreUnavailable) or pending.recorded:
            raise  # cannot be written / the change happened and its record stands
        await _append(
            ctx.redis,
            tenant,
            record(tenant, resource, exc.message),
            now_ms,
            retention_ms,
            settings.events_maxlen,
            rules.EVENT_REFUSED,
            own=True,
        )
        raise
    finally:
        PENDING.reset(token)
    if pending.recorded:
        await _append(
            ctx.redis,
            tenant,
            pending.record,
            now_ms,
            retention_ms,
            settings.events_maxlen,
            rules.EVENT_WRITE,
            own=False,
        )
    else:
        # no script of the tenant carried it: an operator's write, a plain pipeline
        created = getattr(result, "id", None)
        if tenant is None and isinstance(created, str):
            tenant, resource = created, created  # a tenant created: its log starts here
        await _append(
            ctx.redis,
            tenant,
            record(tenant, resource),
            now_ms,
            retention_ms,
            settings.events_maxlen,
            rules.EVENT_WRITE,
            own=True,
        )
    return result


async def refused_request(ctx: Any, tenant: str | None, action: str, reason: str) -> None:
    """Record an authenticated write refused before any store function ran (a suspended
    tenant's write, refused by the guard): `action` names the request (`PATCH /v1/apps/3`)."""
    scope = request_scope.current()
    if scope is None or scope.actor is None:
        return
    now_ms = ctx.now_ms()
    settings = ctx.settings
    record = _stored(
        scope.actor,
        scope,
        tenant=tenant,
        action=action,
        resource="",
        fields={},
        now_ms=now_ms,
        reason=reason,
    )
    await _append(
        ctx.redis,
        tenant,
        record,
        now_ms,
        settings.audit_retention_days * MS_PER_DAY,
        settings.events_maxlen,
        rules.EVENT_REFUSED,
        own=True,
    )


async def _append(
    redis: Redis,
    tenant: str | None,
    record: bytes,
    now_ms: int,
    retention_ms: int,
    events_maxlen: int,
    event_type: str,
    *,
    own: bool,
) -> None:
    """The record in the operator's log, and (`own`) in the tenant's, in one round trip.

    Runs after the write (or its refusal) was decided: a store that fails now must not turn
    an acknowledged write into an error its caller would retry (and so repeat), nor replace
    a refusal's answer. The loss is logged, loudly, with the request's id."""
    calls = [append(keys.AUDIT, record, now_ms=now_ms, retention_ms=retention_ms)]
    if own and tenant is not None:
        calls.append(
            append(
                keys.audit(tenant),
                record,
                now_ms=now_ms,
                retention_ms=retention_ms,
                tenant=tenant,
                events_maxlen=events_maxlen,
                event_type=event_type,
            )
        )
    try:
        await Plain(redis).run_many(calls)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.error("audit record not written (store unavailable): %s", record.decode())


async def count_unauthenticated(redis: Redis, client_ip: str, now_ms: int) -> None:
    """Count one unauthenticated management request of `client_ip` in this minute. A store
    that cannot be reached is not a reason to answer anything but the 401."""
    key = keys.auth_failures(now_ms // 60_000)
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hincrby(key, client_ip or "unknown", 1)
        pipe.expire(key, AUTH_FAILURE_TTL_S)
        await pipe.execute()
    except Exception as exc:
        if not is_unavailable(exc):
            raise


async def unauthenticated_counts(redis: Redis, minute: int) -> dict[str, int]:
    """Unauthenticated requests per client IP in `minute` (ms // 60000)."""
    raw = await redis.hgetall(keys.auth_failures(minute))
    return {as_str(k) or "": int(v) for k, v in raw.items()}


def _check_page(limit: int, cursor: str | None) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidField("limit", f"must be between 1 and {MAX_PAGE}")
    if cursor is not None and not (
        _CURSOR.fullmatch(cursor) and all(int(part) < 2**64 for part in cursor.split("-"))
    ):  # a stream id is two unsigned 64-bit numbers: anything else the store would refuse
        raise InvalidField("cursor", "not a cursor from a previous page")


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


async def read_audit(
    redis: Redis,
    *,
    viewer: str | None,
    tenant: str | None = None,
    action: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """A page of audit records, newest first. `viewer`: a tenant reads its own log (and
    may not name another tenant); None (the operator) reads every tenant's (kr:audit), or
    with `tenant` that tenant's own log (kr:audit's copies once the tenant is deleted).
    `action`, `since_ms`/`until_ms` (inclusive) filter; `cursor` goes on from a previous
    page's `next_cursor`."""
    _check_page(limit, cursor)
    if (until_ms is not None and until_ms < 0) or cursor == "0-0":
        # before 1970, or before the first id there is: no record is that old
        return AuditPage(records=[], next_cursor=None)
    since_ms = None if since_ms is None or since_ms <= 0 else since_ms
    if viewer is not None and tenant not in (None, viewer):
        raise InvalidField("tenant", "a tenant admin reads only its own tenant's records")
    stream = keys.AUDIT
    if viewer is not None:
        stream = keys.audit(viewer)
    elif tenant is not None and await redis.exists(keys.audit(tenant)):
        # the tenant's own log is the authority (and its ids are the ones its admin pages
        # with); the operator's copy serves a tenant whose log is gone with it
        stream, tenant = keys.audit(tenant), None
    end = "(" + cursor if cursor is not None else ("+" if until_ms is None else str(until_ms))
    start = "-" if since_ms is None else str(since_ms)
    found: list[AuditRecord] = []
    scanned = 0
    last_id: str | None = None
    more = False
    while True:
        batch = await redis.xrevrange(stream, end, start, count=SCAN_BATCH)
        for raw_id, values in batch:
            entry_id = as_str(raw_id) or ""
            if len(found) == limit or scanned >= SCAN_CAP:
                more = True
                break
            scanned += 1
            last_id = entry_id
            if until_ms is not None and _entry_ms(entry_id) > until_ms:
                continue
            stored = _DECODE(values[b"r"])
            if (tenant is not None and stored.tenant != tenant) or (
                action is not None and stored.action != action
            ):
                continue
            found.append(AuditRecord(id=entry_id, **msgspec.structs.asdict(stored)))
        if more or len(batch) < SCAN_BATCH:
            break
        end = "(" + (last_id or "")
    return AuditPage(records=found, next_cursor=last_id if more else None)
