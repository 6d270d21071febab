"""The delivery path's store: next_key and refund, through their wrappers (scripts/delivery.py).

`next_key` costs one EVALSHA on the pipelined hot-path client; every decision
(token, allowlist, throttle, limits, selection, counting, events) is in
scripts/lua/next_key.lua, atomically, on the tenant's hash slot. `refund` is the
compensating step of the one failure that comes after the script (the picked key
cannot be decrypted): a second EVALSHA on that path only.
"""

from __future__ import annotations

import logging

from msgspec import UNSET

from rotator import tuning
from rotator.domain import errors
from rotator.domain.clock import DAY_MS, Clock, utc_day
from rotator.domain.models import Delivery
from rotator.domain.tokens import ParsedToken
from rotator.settings import Settings
from rotator.store.fastredis import FastRedis
from rotator.store.scripts import delivery as scripts
from rotator.store.scripts.call import run
from rotator.tuning import MAX_ID_HINTS

log = logging.getLogger("rotator.store")

REQUEST_RECORD_TTL_MS = str(tuning.REQUEST_RECORD_TTL_MS)  # an ARGV of next_key.lua: text
VOID_TTL_MS = str(25 * 3_600_000)
"""How long a withdrawn event stays withdrawn: longer than a delivery job can wait for its first
attempt (arq drops a job not started within a day of being queued: its enqueue_job)."""


_REJECTIONS: dict[str, type[errors.RotatorError]] = {
    "token": errors.InvalidToken,
    "ip": errors.IpNotAllowed,
    "service": errors.UnknownService,
    "nokeys": errors.NoActiveKeys,
}


def refusal_error(reply: scripts.Refused) -> errors.RotatorError:
    """The domain error of a refusal of next_key.lua. A new refusal status is an entry here
    and one in api/delivery_answers.py's REFUSALS (tests/unit/test_delivery_answers.py checks
    they give the same answer)."""
    if reply.status == "throttle":
        return errors.DemoRateLimited(retry_after_s=max(1, -(-int(reply.detail) // 1000)))
    if reply.status == "cooling":
        # every active key cools down (key health): try again when the first recovers
        return errors.NoActiveKeys(retry_after_s=max(1, -(-int(reply.detail) // 1000)))
    if reply.status == "rate":
        # a per-minute refusal's third item is the wait in ms, not the clock
        return errors.RateLimitReached(
            reply.detail.decode(), retry_after_s=max(1, -(-int(reply.now_ms) // 1000))
        )
    if reply.status == "limit":
        return errors.DailyLimitReached(
            reply.detail.decode(),
            retry_after_s=seconds_to_midnight(reply.now_ms, utc_day(reply.now_ms)),
        )
    return _REJECTIONS[reply.status]()


def seconds_to_midnight(now_ms: int, day: int) -> int:
    """Seconds from `now_ms` to the end of UTC day `day` (when the daily counters start again),
    rounded up and at least 1: a client that waits that long is past midnight."""
    return max(1, -(-((day + 1) * DAY_MS - now_ms) // 1000))


class DeliveryStore:
    """Hot-path operations of one process, on one pipelined connection (per node)."""

    def __init__(
        self, fast: FastRedis, settings: Settings, clock: Clock, fixed_clock: bool
    ) -> None:
        self.fast = fast
        self.clock = clock
        # with an injected clock the scripts use it; otherwise they use Redis TIME
        self.fixed_clock = fixed_clock
        self._usage_ttl_s = str(settings.usage_retention_days * 86_400 + 86_400)
        self._events_maxlen = str(settings.events_maxlen)
        self._next_key = scripts.NextKey(
            demo_interval_ms=str(60_000 // settings.demo_rate_per_min),
            demo_burst=str(settings.demo_burst),
            usage_ttl_s=self._usage_ttl_s,
            events_maxlen=self._events_maxlen,
            request_record_ttl_ms=REQUEST_RECORD_TTL_MS,
        )
        # (tenant, service) -> the key ids the script last returned: a hint, never trusted
        # (the script checks it), that saves the script a second HMGET
        self._ids_hint: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}

    @classmethod
    async def open(cls, settings: Settings, clock: Clock, fixed_clock: bool) -> DeliveryStore:
        assert settings.redis_url
        url, timeout_ms, cluster = (
            settings.redis_url, settings.redis_timeout_ms, settings.redis_cluster
        )  # fmt: skip
        try:
            fast = await FastRedis.connect(url, timeout_ms=timeout_ms, cluster=cluster)
        except errors.StoreUnavailable:
            # a bad password or URL still fails here; a down Redis must not stop the
            # process (a restarted worker would crash-loop): answer 503 until it is back
            log.warning("redis unreachable at start; deliveries answer 503 until it is back")
            fast = FastRedis.unconnected(url, timeout_ms=timeout_ms, cluster=cluster)
        return cls(fast, settings, clock, fixed_clock)

    async def close(self) -> None:
        await self.fast.close()

    async def next_key(
        self, token: ParsedToken, service: str, ip_hex: str, request_id: str = ""
    ) -> Delivery:
        """Pick, count and record one delivery; raises the domain error of a refusal.

        `request_id` (from a trusted proxy) makes a retried request count once."""
        found = await self.pick(token, service, ip_hex, request_id)
        if found.__class__ is scripts.Refused:
            raise refusal_error(found)  # type: ignore[arg-type]
        return found  # type: ignore[return-value]

    async def pick(
        self, token: ParsedToken, service: str, ip_hex: str, request_id: str = ""
    ) -> Delivery | scripts.Refused:
        """next_key, with a refusal returned instead of raised: the HTTP handler answers it
        from its table of pre-encoded answers (api/delivery_answers.py's REFUSALS), which
        raising and catching an exception per refusal would only slow down. Raises
        StoreUnavailable."""
        tenant = token.tenant
        hint_key = (tenant, service)
        reply = await self._next_key(
            self.fast,
            tenant,
            token.app,
            service,
            token.secret_hash,
            ip_hex,
            self._now_arg(),
            request_id,
            self._ids_hint.get(hint_key, scripts.NO_HINT),
        )
        if reply.__class__ is scripts.Picked:
            key_ids = None
            if reply.fresh_ids:
                key_ids = self._remember_ids(hint_key, reply.fresh_ids.decode())
            now_ms = reply.now_ms
            day = utc_day(now_ms)
            return Delivery(
                tenant=tenant,
                service=service,
                key_id=reply.key_id,
                label=reply.label.decode() if reply.label else "",
                ciphertext=reply.ciphertext or b"",
                usage_today=reply.usage_today,
                policy=reply.policy.decode(),
                max_daily_requests=int(reply.max_daily_requests)
                if reply.max_daily_requests
                else None,
                app_max_daily_requests=(
                    int(reply.app_max_daily_requests) if reply.app_max_daily_requests else None
                )
                if token.app
                else UNSET,
                demo=reply.demo == 1,
                quota=reply.quota,
                remaining=reply.remaining,
                reset_s=seconds_to_midnight(now_ms, day) if reply.quota else 0,
                max_requests_per_minute=int(reply.max_requests_per_minute)
                if reply.max_requests_per_minute
                else UNSET,
                receipt=(token.app, day, request_id, reply.receipt, reply.undo),
                key_ids=key_ids,
            )
        return reply

    def _now_arg(self) -> str:
        """The scripts' clock argument: the injected time in tests, '' (Redis TIME) else."""
        return str(self.clock()) if self.fixed_clock else ""

    def _remember_ids(self, hint_key: tuple[str, str], ids: str) -> tuple[str, ...]:
        if len(self._ids_hint) >= MAX_ID_HINTS:
            self._ids_hint.clear()  # bounded memory; hints refill on the next deliveries
        split = tuple(ids.split(",")) if ids else ()
        self._ids_hint[hint_key] = (ids, split)
        return split

    async def refund(self, delivery: Delivery) -> int:
        """Undo what next_key counted and recorded for a delivery whose key then failed to
        decrypt, and record key.decrypt_failed: a request answered 500 uses up no quota and
        emits no key.delivered. Returns the key's decrypt failures today."""
        app, day, request_id, entry, undo = delivery.receipt
        return await run(
            self.fast,
            scripts.delivery_refund(
                delivery.tenant,
                delivery.service,
                delivery.key_id,
                app_id=app,
                day=day,
                request_id=request_id,
                receipt=entry,
                undo=undo,
                now_ms=self._now_arg(),
                void_ttl_ms=VOID_TTL_MS,
                events_maxlen=self._events_maxlen,
                usage_ttl_s=self._usage_ttl_s,
            ),
        )
