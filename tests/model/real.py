"""The real system, one tenant of it, behind the same operations as the reference model.

Only public store functions and the delivery store are called (never a raw write), so the
script layer can be restructured under this test. What it reads back is put in the model's
terms: an Answer per request, Recorded events, counters by service, key and app.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

from rotator.api.errors import STATUS
from rotator.crypto import KeyRing
from rotator.domain import errors
from rotator.domain.clock import utc_day
from rotator.domain.iprange import ip_hex
from rotator.domain.reference.answers import Answer
from rotator.domain.reference.state import Recorded
from rotator.domain.tokens import ParsedToken, parse
from rotator.settings import Settings
from rotator.store import apps, keys, services, sweep, tenants, usage
from rotator.store.connection import Durability
from rotator.store.delivery import DeliveryStore
from rotator.store.report import ReportStore

WEBHOOK_URL = "http://127.0.0.1:9/hook"

_KINDS: dict[type[errors.RotatorError], str] = {
    errors.InvalidToken: "token",
    errors.IpNotAllowed: "ip",
    errors.DemoRateLimited: "throttle",
    errors.UnknownService: "service",
    errors.DailyLimitReached: "limit",
    errors.RateLimitReached: "rate",
    errors.NoActiveKeys: "nokeys",
}


def iso_to_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def token(text: str) -> ParsedToken:
    parsed = parse(text)
    assert parsed is not None
    return parsed


NAMES = itertools.count()
"""Tenant names are unique: each example's tenant gets its own."""


class RealTenant:
    def __init__(self, redis: Any, store: DeliveryStore, settings: Settings) -> None:
        self.redis = redis
        self.store = store
        self.settings = settings
        self.keyring: KeyRing = settings.keyring
        self.durability = Durability()
        self.tenant = ""
        self.last_event = "0-0"
        self.reports = ReportStore(store, settings)

    async def create(self, *, demo: bool, now_ms: int) -> ParsedToken:
        created = await tenants.create_tenant(
            self.redis, self.durability, name=f"model {next(NAMES)}", demo=demo, now_ms=now_ms
        )
        self.tenant = created.id
        return token(created.client_token)

    # --- deliveries -----------------------------------------------------------------------
    async def deliver(
        self, credential: ParsedToken, slug: str, client_ip: str, request_id: str = ""
    ) -> Answer:
        try:
            d = await self.store.next_key(credential, slug, ip_hex(client_ip), request_id)
        except errors.RotatorError as exc:
            return Answer(
                status=STATUS[type(exc)],
                # every key cooling down: the 503 with Retry-After
                error="cooling"
                if getattr(exc, "retry_after_s", 0) and isinstance(exc, errors.NoActiveKeys)
                else _KINDS[type(exc)],
                limit=getattr(exc, "limit", ""),
                retry_after_s=getattr(exc, "retry_after_s", 0) or 0,
            )
        return Answer(
            status=200,
            key_id=d.key_id,
            label=d.label,
            usage_today=d.usage_today,
            policy=d.policy,
            max_daily_requests=d.max_daily_requests,
            max_requests_per_minute=d.max_requests_per_minute,
            app_max_daily_requests=d.app_max_daily_requests,
            demo=d.demo,
            quota=d.quota,
            remaining=d.remaining,
            reset_s=d.reset_s,
        )

    async def report(
        self,
        credential: ParsedToken,
        slug: str,
        key_id: int,
        status: int,
        retry_after_s: int | None,
        error: str,
        client_ip: str,
    ) -> tuple[str, int | None] | str:
        """A report through the store POST /v1/report calls: (state, cooldown_until_ms), or
        the kind of refusal."""
        try:
            r = await self.reports.report(
                credential, slug, ip_hex(client_ip), key_id=key_id, status=status,
                retry_after=retry_after_s, error=error or None,
            )  # fmt: skip
        except errors.RotatorError as exc:
            if isinstance(exc, errors.NotFound):
                return "key"
            return _KINDS[type(exc)]
        until = None if r.cooldown_until is None else iso_to_ms(r.cooldown_until)
        return (r.state, until)

    # --- what it recorded and counted -----------------------------------------------------
    async def new_events(self) -> list[Recorded]:
        """Events recorded since the last call, in order."""
        entries = await self.redis.xrange(keys.events(self.tenant), min=f"({self.last_event}")
        if entries:
            self.last_event = entries[-1][0].decode()
        return [Recorded(f[b"type"].decode(), json.loads(f[b"data"])) for _, f in entries]

    async def counts(
        self, slugs: list[str], app_ids: list[int], *, today: int
    ) -> tuple[dict[str, int], dict[int, int], dict[int, int], dict[tuple[str, str], int]]:
        """Today's deliveries per service, per key of those services, per app; reports per
        service and status class (those counted only)."""
        by_service: dict[str, int] = {}
        by_key: dict[int, int] = {}
        reports: dict[tuple[str, str], int] = {}
        for slug in slugs:
            (day,) = (
                await usage.service_usage(
                    self.redis, self.tenant, slug, today=today, days=1,
                    retention_days=self.settings.usage_retention_days,
                )
            ).days  # fmt: skip
            by_service[slug] = day.total
            by_key.update((k.key_id, k.deliveries) for k in day.keys)
            reports.update(((slug, c), n) for c, n in day.reports.items() if n)
        by_app = await usage.apps_today(self.redis, self.tenant, app_ids, today=today)
        return by_service, by_key, dict(zip(app_ids, by_app, strict=True)), reports

    async def listing(self, slug: str, now_ms: int) -> list[tuple]:
        """The keys as a listing shows them: (id, active, state, current, expires_at,
        cooldown_until, disabled_reason, failures, last report)."""
        listed = await services.list_keys(self.redis, self.tenant, slug, now_ms=now_ms)
        return [
            (k.id, k.active, k.state, k.current, k.expires_at, k.cooldown_until,
             k.disabled_reason, k.failures,
             k.last_report and (k.last_report.status, k.last_report.error,
                                k.last_report.reported_at))
            for k in listed
        ]  # fmt: skip

    # --- the tenant -----------------------------------------------------------------------
    async def subscribe(self, event_types: list[str]) -> None:
        await tenants.update_tenant(
            self.redis, self.durability, self.keyring, self.tenant,
            webhook_url=WEBHOOK_URL, webhook_events=event_types, webhook_allow_private=True,
        )  # fmt: skip

    async def set_allowlist(self, cidrs: list[str]) -> None:
        await tenants.update_tenant(
            self.redis, self.durability, self.keyring, self.tenant, ip_allowlist=cidrs
        )

    async def reissue_client_token(self) -> ParsedToken:
        issued = await tenants.issue_client_token(self.redis, self.durability, self.tenant)
        return token(issued.client_token)

    async def set_suspended(self, suspended: bool, now_ms: int) -> None:
        await tenants.update_tenant_status(
            self.redis, self.durability, self.tenant, suspended=suspended, now_ms=now_ms
        )

    # --- services and keys ----------------------------------------------------------------
    async def create_service(self, slug: str, **settings: Any) -> None:
        await services.create_service(
            self.redis, self.durability, self.tenant, slug=slug, **settings
        )

    async def delete_service(self, slug: str, now_ms: int) -> None:
        await services.delete_service(
            self.redis, self.durability, self.tenant, slug, today=utc_day(now_ms),
            retention_days=self.settings.usage_retention_days,
        )  # fmt: skip

    async def update_service(self, slug: str, now_ms: int, **changes: Any) -> None:
        await services.update_service(
            self.redis, self.durability, self.tenant, slug, now_ms=now_ms, **changes
        )

    async def add_key(
        self, slug: str, *, label: str, max_daily: int | None, now_ms: int,
        weight: int = 1, per_minute: int | None = None,
    ) -> int:  # fmt: skip
        key = await services.add_key(
            self.redis, self.durability, self.keyring, self.tenant, slug,
            label=label, secret=f"sk-{label}", max_daily_requests=max_daily, now_ms=now_ms,
            weight=weight, max_requests_per_minute=per_minute,
        )  # fmt: skip
        return key.id

    async def update_key(self, slug: str, key_id: int, now_ms: int, **changes: Any) -> None:
        await services.update_key(
            self.redis, self.durability, self.tenant, slug, key_id,
            now_ms=now_ms, events_maxlen=self.settings.events_maxlen, **changes,
        )  # fmt: skip

    async def move_key(self, slug: str, key_id: int, to: str, now_ms: int) -> None:
        await services.move_key(
            self.redis, self.durability, self.tenant, slug, key_id,
            to=to, now_ms=now_ms, events_maxlen=self.settings.events_maxlen,
        )  # fmt: skip

    async def remove_key(self, slug: str, key_id: int, now_ms: int) -> None:
        await services.remove_key(
            self.redis, self.durability, self.tenant, slug, key_id,
            now_ms=now_ms, events_maxlen=self.settings.events_maxlen,
        )  # fmt: skip

    async def rotate(self, slug: str, now_ms: int) -> tuple[int, int] | str:
        try:
            r = await services.rotate(
                self.redis, self.durability, self.tenant, slug,
                now_ms=now_ms, events_maxlen=self.settings.events_maxlen,
            )  # fmt: skip
        except errors.Conflict as exc:
            return "nokeys" if exc.message == errors.NoActiveKeys.message else "policy"
        return (r.from_key_id, r.to_key_id)

    async def sweep(self, slug: str, now_ms: int) -> tuple[str, int, bool]:
        r = await sweep.sweep_service(
            self.redis, self.tenant, slug, now_ms=now_ms, events_maxlen=self.settings.events_maxlen
        )
        return (r.status, r.newly_expired, r.noact_set)

    # --- apps -----------------------------------------------------------------------------
    async def add_app(
        self, *, allowlist: list[str], max_daily: int | None, now_ms: int
    ) -> tuple[int, ParsedToken]:
        created = await apps.add_app(
            self.redis, self.durability, self.tenant, name="app",
            ip_allowlist=allowlist, max_daily_requests=max_daily, now_ms=now_ms,
        )  # fmt: skip
        return created.id, token(created.app_token)

    async def update_app(self, app_id: int, **changes: Any) -> None:
        await apps.update_app(self.redis, self.durability, self.tenant, app_id, **changes)

    async def reissue_app_token(self, app_id: int) -> ParsedToken:
        issued = await apps.issue_app_token(self.redis, self.durability, self.tenant, app_id)
        return token(issued.app_token)

    async def delete_app(self, app_id: int) -> None:
        await apps.delete_app(self.redis, self.durability, self.tenant, app_id)
