"""Import an export of services and keys into a tenant, all or nothing (`rotator import`,
`POST /v1/import` and the console's import page; the file's forms are
rotator/domain/import_file.py).

Every row is checked before anything is written, with the rules of the service and key
functions it then calls (services.create_service, services.add_keys), and every bad row is
reported at once. An import never changes a service that exists: a row whose policy, limit
or key ttl disagrees with it is refused, by its row number (the tenant changes the service
first, or the file); its empty cells mean "as the service is".

The writes are then one service creation per new service and one bulk add (one script,
all or none) per service. They are not one transaction: if the store fails midway, what
was written is undone (new services deleted, keys added to existing services removed)
before the error is raised; if even that fails, ImportIncomplete says what may remain.
Meanwhile a delivery may already hand out an imported key: the keys are the tenant's own,
and only an import that fails on an outage can take one back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rotator.crypto import KeyRing
from rotator.domain.clock import utc_day
from rotator.domain.errors import (
    Conflict,
    ImportIncomplete,
    InvalidEntry,
    InvalidField,
    InvalidRows,
    NotFound,
    RowProblem,
)
from rotator.domain.import_file import ImportRow
from rotator.domain.models import NewKey
from rotator.domain.records import Imported, ImportedService, Service
from rotator.store import services
from rotator.store.common import check_limit, check_name
from rotator.store.connection import Durability, Redis, is_unavailable, unavailability

log = logging.getLogger(__name__)

MAX_IMPORT_ROWS = 10_000
"""Rows in one import: ten bulk adds' worth; a larger export is split into several files."""

Refuse = Callable[[ImportRow, str, str], None]
"""Records a problem of a row: (row, its column, what is wrong)."""


@dataclass
class _Planned:
    """One service of the file: what to create (unless it exists) and the keys to add."""

    slug: str
    first_row: int
    existing: Service | None
    policy: str | None = None
    limit: int | None = None
    ttl_minutes: int | None = None
    keys: list[NewKey] = field(default_factory=list)
    secrets: dict[str, int] = field(default_factory=dict)
    """secret -> the row it was first read from (a repeat is refused by row number)."""


async def import_keys(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    tenant: str,
    rows: Sequence[ImportRow],
    *,
    now_ms: int,
    events_maxlen: int,
    retention_days: int,
) -> Imported:
    """Create the services the rows name that do not exist and add every row's key, all or
    nothing; InvalidRows lists every refused row before anything is written."""
    if not 1 <= len(rows) <= MAX_IMPORT_ROWS:
        raise InvalidField("rows", f"must hold 1 to {MAX_IMPORT_ROWS} rows, not {len(rows)}")
    existing = {s.slug: s for s in await services.list_services(redis, tenant, now_ms=now_ms)}
    plan = _plan(rows, existing)
    await _refuse_held(redis, keyring, tenant, plan)
    return await _apply(
        redis, durability, keyring, tenant, plan, now_ms, events_maxlen, retention_days
    )


# --- checks ---------------------------------------------------------------------------------
def _plan(rows: Sequence[ImportRow], existing: dict[str, Service]) -> list[_Planned]:
    planned: dict[str, _Planned] = {}
    problems: list[RowProblem] = []

    def refuse(row: ImportRow, column: str, problem: str) -> None:
        problems.append(RowProblem(row=row.row, field=column, problem=problem))

    for row in rows:
        before = len(problems)
        try:
            slug = services.check_slug(row.slug)
        except InvalidField as exc:
            refuse(row, "slug", exc.problem)
            slug = None
        key = _check_key(row, refuse)
        if row.policy is not None:
            try:
                services.check_policy(row.policy)
            except InvalidField as exc:
                refuse(row, "policy", exc.problem)
        try:
            check_limit("limit", row.limit)
        except InvalidField as exc:
            refuse(row, "limit", exc.problem)
        if slug is None or len(problems) > before:
            continue
        service = planned.get(slug)
        if service is None:
            service = planned[slug] = _Planned(slug, row.row, existing.get(slug))
        _agree(service, row, refuse)
        assert key is not None
        first = service.secrets.setdefault(key.secret, row.row)
        if first != row.row:
            refuse(row, "secret", f"the same secret as row {first} (service {slug})")
        service.keys.append(key)
    for service in planned.values():
        if service.existing is not None:
            continue
        if service.policy is None:
            problems.append(
                RowProblem(row=service.first_row, field="policy",
                           problem=f"required: service {service.slug} does not exist yet")
            )  # fmt: skip
            continue
        try:
            services.check_ttl(service.policy, service.ttl_minutes)
        except InvalidField as exc:
            problem = f"service {service.slug}: {exc.problem}"
            problems.append(RowProblem(row=service.first_row, field=exc.field, problem=problem))
    for service in planned.values():
        if len(service.keys) > services.MAX_BULK_KEYS:
            problems.append(
                RowProblem(row=service.first_row, field="slug",
                           problem=f"service {service.slug}: at most {services.MAX_BULK_KEYS} "
                                   f"keys in one import, not {len(service.keys)}")
            )  # fmt: skip
    if problems:
        raise InvalidRows(sorted(problems, key=lambda p: p.row))
    return list(planned.values())


def _check_key(row: ImportRow, refuse: Refuse) -> NewKey | None:
    """The row's key with the key checks of services.add_keys (None when refused)."""
    ok = True
    try:
        secret = services.check_secret(row.secret)
    except InvalidField as exc:
        refuse(row, "secret", exc.problem)
        ok = False
    label = None
    if row.label is not None:
        try:
            label = check_name("label", row.label)
        except InvalidField as exc:
            refuse(row, "label", exc.problem)
            ok = False
    return NewKey(secret=secret, label=label) if ok else None


def _agree(service: _Planned, row: ImportRow, refuse: Refuse) -> None:
    """A row's service settings must match the service (existing) or its earlier rows."""
    if service.existing is not None:
        s = service.existing
        for column, given, actual in (
            ("policy", row.policy, s.policy),
            ("limit", row.limit, s.max_daily_requests),
            ("key_ttl_minutes", row.key_ttl_minutes, s.key_ttl_minutes),
        ):
            if given is not None and given != actual:
                refuse(
                    row, column,
                    f"service {s.slug} exists with {column} {_shown(actual)}, the row says "
                    f"{given}: an import never changes a service (leave the cell empty, or "
                    f"change the service first)",
                )  # fmt: skip
        return
    for column, attr, given in (
        ("policy", "policy", row.policy),
        ("limit", "limit", row.limit),
        ("key_ttl_minutes", "ttl_minutes", row.key_ttl_minutes),
    ):
        if given is None:
            continue
        earlier = getattr(service, attr)
        if earlier is None:
            setattr(service, attr, given)
        elif earlier != given:
            refuse(
                row, column,
                f"service {service.slug} is given {column} {earlier} by an earlier row, "
                f"this row says {given}",
            )  # fmt: skip


async def _refuse_held(redis: Redis, keyring: KeyRing, tenant: str, plan: list[_Planned]) -> None:
    """InvalidRows naming every row whose key a service that exists already holds: running an
    import twice adds nothing the second time. (add_keys checks again as it writes.)"""
    problems: list[RowProblem] = []
    for service in plan:
        if service.existing is None:
            continue
        secrets = [key.secret for key in service.keys]
        try:
            _, held = await services.present_secrets(redis, keyring, tenant, service.slug, secrets)
        except NotFound:
            continue  # deleted meanwhile: the write says so
        for index, key_id in held.items():
            row = service.secrets[secrets[index]]
            problem = f"service {service.slug}: {services.already_held(key_id)}"
            problems.append(RowProblem(row=row, field="secret", problem=problem))
    if problems:
        raise InvalidRows(sorted(problems, key=lambda p: p.row))


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


# --- writes ---------------------------------------------------------------------------------
async def _apply(
    redis: Redis,
    durability: Durability,
    keyring: KeyRing,
    tenant: str,
    plan: list[_Planned],
    now_ms: int,
    events_maxlen: int,
    retention_days: int,
) -> Imported:
    created: list[str] = []
    added: list[tuple[str, list[int]]] = []  # keys added to services that existed
    results: list[ImportedService] = []
    # new services first: undoing one is deleting it, which takes its keys along
    ordered = sorted(plan, key=lambda p: p.existing is not None)
    try:
        for service in ordered:
            policy = service.existing.policy if service.existing else service.policy
            assert policy is not None
            if service.existing is None:
                try:
                    await services.create_service(
                        redis, durability, tenant, slug=service.slug, policy=policy,
                        max_daily_requests=service.limit,
                        key_ttl_minutes=service.ttl_minutes, now_ms=now_ms,
                    )  # fmt: skip
                except Conflict:
                    raise Conflict(
                        f"service {service.slug} was created while importing; nothing was "
                        "imported: run the import again"
                    ) from None
                created.append(service.slug)
            try:
                result = await services.add_keys(
                    redis, durability, keyring, tenant, service.slug, service.keys,
                    now_ms=now_ms,
                )  # fmt: skip
            except NotFound:
                raise NotFound(
                    f"service {service.slug} was deleted while importing; nothing was "
                    "imported: run the import again"
                ) from None
            except InvalidEntry as exc:  # a key added since _refuse_held: its row, not index
                row = service.secrets[service.keys[exc.index].secret]
                problem = f"service {service.slug}: {exc.problem}"
                raise InvalidRows([RowProblem(row=row, field=exc.field, problem=problem)]) from None
            ids = [k.id for k in result.keys]
            if service.existing is not None:
                added.append((service.slug, ids))
            results.append(
                ImportedService(slug=service.slug, policy=policy,
                                created=service.existing is None, key_ids=ids)
            )  # fmt: skip
    except (Exception, asyncio.CancelledError) as exc:
        left, store_down = await _undo(
            redis, durability, tenant, created, added, now_ms, events_maxlen, retention_days
        )
        if left:
            raise ImportIncomplete(
                "import failed midway and could not be undone"
                + (" (store unavailable)" if store_down else "")
                + "; still there: "
                + "; ".join(left)
                + " (delete them, then import again)",
                store_unavailable=store_down,
            ) from exc
        raise
    results.sort(key=lambda r: r.slug)
    return Imported(services=results, keys_added=sum(len(r.key_ids) for r in results))


async def _undo(
    redis: Redis,
    durability: Durability,
    tenant: str,
    created: list[str],
    added: list[tuple[str, list[int]]],
    now_ms: int,
    events_maxlen: int,
    retention_days: int,
) -> tuple[list[str], bool]:
    """Take back what an import wrote: what could not be taken back, in words, and whether
    only the store being unavailable stopped it (then one warning line each, no traceback:
    the CLI prints its log on stderr)."""
    left: list[str] = []
    failures: list[Exception] = []

    def failed(exc: Exception, what: str) -> None:
        failures.append(exc)
        if is_unavailable(exc):
            log.warning("import undo: %s (%s)", what, unavailability(exc))
        else:  # not the store: a bug, with its traceback
            log.error("import undo: %s", what, exc_info=exc)

    for slug in created:
        try:
            await services.delete_service(
                redis, durability, tenant, slug, today=utc_day(now_ms),
                retention_days=retention_days,
            )  # fmt: skip
        except NotFound:
            pass
        except Exception as exc:
            failed(exc, f"could not delete service {slug}")
            left.append(f"service {slug} (created by the import)")
    for slug, ids in added:
        remaining: list[str] = []
        first_failure: Exception | None = None
        for key_id in ids:
            try:
                await services.remove_key(
                    redis, durability, tenant, slug, key_id,
                    now_ms=now_ms, events_maxlen=events_maxlen,
                )  # fmt: skip
            except NotFound:
                pass
            except Exception as exc:
                first_failure = first_failure or exc
                remaining.append(str(key_id))
        if first_failure is not None:  # one line per service, not per key
            failed(first_failure, f"keys {','.join(remaining)} of service {slug} remain")
            left.append(f"keys {', '.join(remaining)} of service {slug}")
    return left, bool(failures) and all(is_unavailable(exc) for exc in failures)
