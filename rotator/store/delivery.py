"""The delivery path's store: one typed wrapper per script (next_key, delivery_refund).

`next_key` costs one EVALSHA on the pipelined hot-path client; every decision
(token, allowlist, throttle, limits, selection, counting, events) is in
scripts/lua/next_key.lua, atomically, on the tenant's hash slot. `refund` is the
compensating step of the one failure that comes after the script (the picked key
cannot be decrypted): a second EVALSHA on that path only.
"""

from __future__ import annotations

import functools
import logging

from msgspec import UNSET

from rotator import tuning
from rotator.domain import errors
from rotator.domain.clock import DAY_MS, Clock, utc_day
from rotator.domain.models import Delivery
from rotator.domain.tokens import ParsedToken
from rotator.settings import Settings
from rotator.store import keys, scripts
from rotator.store.fastredis import FastRedis
from rotator.tuning import MAX_ID_HINTS

log = logging.getLogger("rotator.store")

_NEXT_KEY = scripts.load("next_key")
_REFUND = scripts.load("delivery_refund")

REQUEST_RECORD_TTL_MS = str(tuning.REQUEST_RECORD_TTL_MS)  # an ARGV of next_key.lua: text
VOID_TTL_MS = str(25 * 3_600_000)
"""How long a withdrawn event stays withdrawn: longer than a delivery job can wait for its first
attempt (arq drops a job not started within a day of being queued: its enqueue_job)."""

_REJECTIONS: dict[bytes, type[errors.RotatorError]] = {
    b"token": errors.InvalidToken,
    b"ip": errors.IpNotAllowed,
    b"service": errors.UnknownService,
    b"nokeys": errors.NoActiveKeys,
}


_NO_HINT: tuple[str, tuple[str, ...]] = ("", ())


def seconds_to_midnight(now_ms: int, day: int) -> int:
    """Seconds from `now_ms` to the end of UTC day `day` (when the daily counters start again),
    rounded up and at least 1: a client that waits that long is past midnight."""
    return max(1, -(-((day + 1) * DAY_MS - now_ms) // 1000))


@functools.lru_cache(maxsize=4096)
def hint_fields(ids: str) -> tuple[str, ...]:
    """next_key.lua's ARGV[16..] for a hint of key ids "1,2,3": the counter field of each
    key, then each key's state fields (see the script's header). Cached: key ids count
    from 1 in every tenant, so most services share a hint, and one tuple serves them all
    (the hint cache then holds about as much per service as the ids alone)."""
    split = ids.split(",") if ids else []
    state = [field for i in split for field in ("a:" + i, "m:" + i)]
    return (*("k:" + i for i in split), *state)


class DeliveryStore:
    """Hot-path operations of one process, on one pipelined connection (per node)."""

    def __init__(
        self, fast: FastRedis, settings: Settings, clock: Clock, fixed_clock: bool
    ) -> None:
        self.fast = fast
        self.clock = clock
        # with an injected clock the scripts use it; otherwise they use Redis TIME
        self.fixed_clock = fixed_clock
        self._demo_interval_ms = str(60_000 // settings.demo_rate_per_min)
        self._demo_burst = str(settings.demo_burst)
        self._usage_ttl_s = str(settings.usage_retention_days * 86_400 + 86_400)
        self._events_maxlen = str(settings.events_maxlen)
        # (tenant, service) -> the key ids the script last returned, with their field names:
        # a hint, never trusted (the script checks it), that saves a round of HMGET and
        # every string the script would otherwise build
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
        """Pick, count and record one delivery; raises the domain error of a rejection.

        `request_id` (from a trusted proxy) makes a retried request count once."""
        now_ms = self.clock()
        day = utc_day(now_ms)
        tenant = token.tenant
        tag = keys.tag(tenant)
        hint_key = (tenant, service)
        hint, hint_argv = self._ids_hint.get(hint_key, _NO_HINT)
        for _ in range(2):
            reply = await self.fast.evalsha(
                _NEXT_KEY,
                (
                    tag + ":tenant",
                    tag + ":app:" + token.app,
                    tag + ":svc:" + service,
                    tag + ":use:" + str(day),
                    tag + ":gcra:" + ip_hex,
                    tag + ":events",
                    tag + ":rid:" + request_id,
                ),
                (
                    token.secret_hash,
                    token.app,
                    service,
                    ip_hex,
                    str(now_ms) if self.fixed_clock else "",
                    str(day),
                    self._demo_interval_ms,
                    self._demo_burst,
                    self._usage_ttl_s,
                    self._events_maxlen,
                    hint,
                    request_id,
                    REQUEST_RECORD_TTL_MS,
                    "s:" + service,
                    "a:" + token.app,
                    *hint_argv,
                ),
            )
            status = reply[0]
            if status == b"ok":
                (
                    _, key_id, label, ciphertext, usage_today, policy, svc_max, demo, fresh_ids,
                    entry, undo, app_max, quota, remaining,
                ) = reply  # fmt: skip
                if fresh_ids:
                    self._remember_ids(hint_key, fresh_ids.decode())
                return Delivery(
                    tenant=tenant,
                    service=service,
                    key_id=key_id,
                    label=label.decode() if label else "",
                    ciphertext=ciphertext or b"",
                    usage_today=usage_today,
                    policy=policy.decode(),
                    max_daily_requests=int(svc_max) if svc_max else None,
                    app_max_daily_requests=(int(app_max) if app_max else None)
                    if token.app
                    else UNSET,
                    demo=demo == 1,
                    quota=quota,
                    remaining=remaining,
                    reset_s=seconds_to_midnight(now_ms, day) if quota else 0,
                    receipt=(token.app, day, request_id, entry, undo),
                )
            if status == b"day":
                # our clock and Redis TIME straddle a UTC midnight: use Redis's day
                day = reply[1]
                continue
            if status == b"throttle":
                raise errors.DemoRateLimited(retry_after_s=max(1, -(-reply[1] // 1000)))
            if status == b"limit":
                raise errors.DailyLimitReached(
                    reply[1].decode(), retry_after_s=seconds_to_midnight(now_ms, day)
                )
            raise _REJECTIONS[status]()
        raise errors.StoreUnavailable("clock disagreement with the store")

    def _remember_ids(self, hint_key: tuple[str, str], ids: str) -> None:
        if len(self._ids_hint) >= MAX_ID_HINTS:
            self._ids_hint.clear()  # bounded memory; hints refill on the next deliveries
        self._ids_hint[hint_key] = (ids, hint_fields(ids))

    async def refund(self, delivery: Delivery) -> int:
        """Undo what next_key counted and recorded for a delivery whose key then failed to
        decrypt, and record key.decrypt_failed: a request answered 500 uses up no quota and
        emits no key.delivered. Returns the key's decrypt failures today."""
        app, day, request_id, entry, undo = delivery.receipt
        tenant, service = delivery.tenant, delivery.service
        return await self.fast.evalsha(
            _REFUND,
            (
                keys.service(tenant, service),
                keys.usage(tenant, day),
                keys.events(tenant),
                keys.request_record(tenant, request_id),
                keys.void(tenant),
            ),
            (
                service,
                str(delivery.key_id),
                app,
                "-" if entry is None else entry,  # None: a retry answered, nothing counted
                undo,
                request_id,
                str(self.clock()) if self.fixed_clock else "",
                VOID_TTL_MS,
                self._events_maxlen,
                self._usage_ttl_s,
            ),
        )
