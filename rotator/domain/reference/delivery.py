"""One delivery request (GET /v1/next), step by step, each rule stated once.

Steps, in order; the first that refuses answers, and a request refused before selection
counts nothing:

1. token      the latest token of the tenant or of one of its apps (access.token_ok): 403
2. allowlist  the client in the tenant's allowlist and, for an app token, the app's: 403
3. throttle   demo tenants only, per client address (access.Throttle): 429 with Retry-After
4. service    it exists: 404
   retry      a request id a trusted proxy sent before (a retry of a request whose answer was
              lost), from the same caller (the app, or the tenant's client token), gets the key
              the first attempt got while that key is in the service and usable, whatever the
              limits now: counted once, nothing recorded. Another caller's id, or a key
              disabled, cooling or expired since, is a new delivery
5. limits     today's deliveries of the service, then of the app, below their daily limits:
              429 naming the limit, Retry-After until UTC midnight; the refusal records
              service.limit_reached / app.limit_reached if that was not recorded today
5b. per minute the service's deliveries in the last minute, (now - 60 s, now], below its
              max_requests_per_minute: else 429 `rate` naming `service`, Retry-After until the
              oldest of the last R slides out (seconds, rounded up)
6. select     by the service's policy (below), among the keys that are *available*: usable
              (rotation.py: active, not cooling down, not expired) and below their own limits
              (today's count under the key's daily limit, its deliveries in the last minute
              under its per-minute limit). No usable key: 503, with Retry-After until the first
              recovers when some active key is cooling down, else service.no_active_keys once
              per episode; usable keys but each at a limit: 429 `rate` naming `key` when one of
              them is at its per-minute limit (and not its daily one; Retry-After: the soonest
              to free a slot), else 429 `limit` naming `key`; the picked key's ended cooldown
              is cleared (key.recovered)
7. count      the key, the service and the app count one more today; the delivery enters the
              per-minute windows of the service and the key that have a limit now; events
8. answer     the key, its count today, the limits and what is left of the tightest one

Policies:
- usage: the least used available key today; among equals the first in rotation order. Keys
  never expire (nor under the three below).
- round_robin: the available key with the lowest id above the one delivered last, else the
  lowest id (wrapping).
- weighted: smooth weighted round robin (nginx): every available key's running weight grows
  by its weight; the largest (ties: the lowest id) is picked and loses the sum of the
  available keys' weights. Keys not available keep their running weight.
- least_recently_used: the available key whose last delivery under this policy is the
  oldest (never delivered first; ties: the lowest id).
- manual and time: the current key (rotation.py). When the walk finds it elsewhere than the
  pointer, the pointer moves there; under the time policy, when the key the pointer names
  has expired, that is recorded as key.rotated, reason `expired`. A current key at one of its
  own limits overflows to the next available key without becoming current (at its daily
  limit: key.rotated, reason `usage`, once per key and day; at its per-minute limit: no
  event). A time-policy key enters rotation (its lifetime starts) when it is first delivered.

Once-a-day events are recorded at most once per UTC day and value: the limit events per
(service or app, limit value), so a changed limit is reported again; the warning when
today's service count reaches `limit_warning_percent` of its limit (compared in integers:
80% of 10 is reached at 8).
"""

from __future__ import annotations

import msgspec

from rotator.domain.reference import rotation
from rotator.domain.reference.access import address, allowed, token_ok
from rotator.domain.reference.answers import OK, Answer, refused
from rotator.domain.reference.model import Model
from rotator.domain.reference.state import (
    DAY_MS,
    MINUTE_MS,
    Credential,
    ModelApp,
    ModelKey,
    ModelService,
)


def seconds_to_midnight(now_ms: int) -> int:
    """Until the daily counters start again, rounded up, at least 1."""
    end = (now_ms // DAY_MS + 1) * DAY_MS
    return max(1, -(-(end - now_ms) // 1000))


def in_window(window: list[int], now_ms: int) -> list[int]:
    """The deliveries of a per-minute window in the last minute, (now - 60 s, now]."""
    return [t for t in window if t > now_ms - MINUTE_MS]


def minute_wait_ms(window: list[int], limit: int | None, now_ms: int) -> int | None:
    """None when a per-minute limit (None: none) leaves a slot now; else ms until one frees:
    when the oldest of the last `limit` deliveries slides out."""
    if limit is None:
        return None
    recent = in_window(window, now_ms)
    if len(recent) < limit:
        return None
    return recent[-limit] + MINUTE_MS - now_ms


def seconds(wait_ms: int) -> int:
    return max(1, -(-wait_ms // 1000))


def deliver(
    model: Model,
    credential: Credential,
    slug: str,
    client_ip: str,
    now_ms: int,
    request_id: str = "",
) -> Answer:
    tenant = model.tenant
    app = model.apps.get(credential.app_id) if credential.app_id is not None else None
    # 1. token
    if not token_ok(tenant, app, credential):
        return refused("token")
    # 2. allowlists
    client = address(client_ip)
    if not allowed(tenant.allowlist, client) or (app and not allowed(app.allowlist, client)):
        return refused("ip")
    # 3. demo throttle
    if tenant.demo:
        wait_ms = model.throttle.admit(client, now_ms)
        if wait_ms:
            return refused("throttle", retry_after_s=max(1, -(-wait_ms // 1000)))
    # 4. service
    service = model.services.get(slug)
    if service is None:
        return refused("service")
    counts = model.day(now_ms)
    service_count = counts.services.get(slug, 0)
    app_count = counts.apps.get(app.id, 0) if app else 0
    # 4b. a proxy's retry
    key_id, caller = model.request_ids.get(request_id, (0, None)) if request_id else (0, None)
    first = service.key(key_id) if caller == credential.app_id else None
    if first is not None and rotation.usable(service, first, now_ms):
        return _answer(model, service, first, app, counts.keys.get(first.id, 0),
                       service_count, app_count, now_ms)  # fmt: skip
    # 5. daily limits of the service and the app
    if service.max_daily_requests is not None and service_count >= service.max_daily_requests:
        _service_limit_reached(model, slug, service.max_daily_requests, now_ms)
        return refused("limit", limit="service", retry_after_s=seconds_to_midnight(now_ms))
    if app and app.max_daily_requests is not None and app_count >= app.max_daily_requests:
        _app_limit_reached(model, slug, app, now_ms)
        return refused("limit", limit="app", retry_after_s=seconds_to_midnight(now_ms))
    # 5b. the service's per-minute limit
    service_window = model.service_windows.setdefault(slug, [])
    wait = minute_wait_ms(service_window, service.max_requests_per_minute, now_ms)
    if wait is not None:
        return refused("rate", limit="service", retry_after_s=seconds(wait))
    # 6. select
    limits = {k.id: _at_limit(k, counts.keys.get(k.id, 0), now_ms) for k in service.keys}
    available = [k for k in service.keys if rotation.usable(service, k, now_ms) and
                 limits[k.id] is None]  # fmt: skip
    if service.policy in ("manual", "time"):
        candidates, key = _select_from_current(model, service, limits, now_ms)
    else:
        candidates = [k for k in service.keys if rotation.usable(service, k, now_ms)]
        key = _select(service, available, counts.keys) if available else None
    if key is None:
        waits = [w for k in candidates if (w := limits[k.id]) not in (None, "day")]
        if waits:
            return refused("rate", limit="key", retry_after_s=seconds(min(waits)))
        if candidates:
            return refused("limit", limit="key", retry_after_s=seconds_to_midnight(now_ms))
        # 6b. health: every active key cooling down: try again when the first recovers
        cooling = [
            k.health.cooldown_until_ms for k in service.keys
            if k.active and rotation.cooling(k, now_ms)
        ]  # fmt: skip
        if cooling:
            wait_ms = min(u for u in cooling if u is not None) - now_ms
            return refused("cooling", retry_after_s=max(1, -(-wait_ms // 1000)))
        if not service.no_active_recorded:
            service.no_active_recorded = True
            model.emit("service.no_active_keys", {"service": slug})
        return refused("nokeys")
    # 6c. recover: the picked key's cooldown has ended (else it would not be available)
    if key.health.cooldown_until_ms is not None:
        key.health.cooldown_until_ms = None
        model.emit("key.recovered", {"service": slug, "key_id": key.id})
    # 7. count and record
    if service.max_requests_per_minute is not None:
        service_window.append(now_ms)
    if key.max_requests_per_minute is not None:
        key.window.append(now_ms)
    usage_today = counts.keys[key.id] = counts.keys.get(key.id, 0) + 1
    service_count = counts.services[slug] = service_count + 1
    if app:
        app_count = counts.apps[app.id] = app_count + 1
        if app.max_daily_requests is not None and app_count >= app.max_daily_requests:
            _app_limit_reached(model, slug, app, now_ms)
    limit = service.max_daily_requests
    warn = service.limit_warning_percent
    if limit is not None and service_count >= limit:
        _service_limit_reached(model, slug, limit, now_ms)
    elif limit is not None and warn is not None and service_count * 100 >= limit * warn:
        model.emit_daily(
            "service.limit_warning",
            {"service": slug, "limit": limit, "limit_warning_percent": warn,
             "usage_today": service_count},
            ("service.limit_warning", slug, limit),
            now_ms,
        )  # fmt: skip
    delivered = {"service": slug, "key_id": key.id, "usage_today": usage_today}
    if app:
        delivered["app_id"] = app.id
    model.emit("key.delivered", delivered)
    if request_id:
        model.request_ids[request_id] = (key.id, credential.app_id)
    return _answer(model, service, key, app, usage_today, service_count, app_count, now_ms)


def _service_limit_reached(model: Model, slug: str, limit: int, now_ms: int) -> None:
    """service.limit_reached, once a day: when a request is refused at the limit, and when
    a delivery reaches it."""
    model.emit_daily(
        "service.limit_reached",
        {"service": slug, "scope": "service", "limit": limit},
        ("service.limit_reached", slug, limit),
        now_ms,
    )


def _app_limit_reached(model: Model, slug: str, app: ModelApp, now_ms: int) -> None:
    """app.limit_reached, once a day: when a request is refused at the app's limit, and
    when a delivery reaches it."""
    model.emit_daily(
        "app.limit_reached",
        {"service": slug, "app_id": app.id, "limit": app.max_daily_requests},
        ("app.limit_reached", app.id, app.max_daily_requests),
        now_ms,
    )


def _answer(
    model: Model,
    service: ModelService,
    key: ModelKey,
    app: ModelApp | None,
    usage_today: int,
    service_count: int,
    app_count: int,
    now_ms: int,
) -> Answer:
    """8. The 200: the key, its count today, the limits, and the tightest limit (the one with
    fewer requests left after this one, the service's on a tie) with what is left of it."""
    limit = service.max_daily_requests
    quota = remaining = 0
    if limit is not None:
        quota, remaining = limit, limit - service_count
    if app and app.max_daily_requests is not None:
        app_left = app.max_daily_requests - app_count
        if quota == 0 or app_left < remaining:
            quota, remaining = app.max_daily_requests, app_left
    return Answer(
        status=OK,
        key_id=key.id,
        label=key.label,
        usage_today=usage_today,
        policy=service.policy,
        max_daily_requests=limit,
        max_requests_per_minute=(
            msgspec.UNSET
            if service.max_requests_per_minute is None
            else service.max_requests_per_minute
        ),
        app_max_daily_requests=app.max_daily_requests if app else msgspec.UNSET,
        demo=model.tenant.demo,
        quota=quota,
        remaining=max(remaining, 0),
        reset_s=seconds_to_midnight(now_ms) if quota else 0,
    )


def _at_limit(key: ModelKey, used_today: int, now_ms: int) -> str | int | None:
    """Which of its own limits a key is at: None (neither), 'day', or the ms until its
    per-minute window frees a slot (the daily limit is looked at first)."""
    if key.max_daily_requests is not None and used_today >= key.max_daily_requests:
        return "day"
    return minute_wait_ms(key.window, key.max_requests_per_minute, now_ms)


def _select(
    service: ModelService, available: list[ModelKey], used_today: dict[int, int]
) -> ModelKey:
    """usage, round_robin, weighted, least_recently_used: the pick among available keys (in
    rotation order), with the policy's state moved on."""
    if service.policy == "usage":
        return min(available, key=lambda k: used_today.get(k.id, 0))
    by_id = sorted(available, key=lambda k: k.id)
    if service.policy == "round_robin":
        pick = next((k for k in by_id if k.id > service.round_robin_last), by_id[0])
        service.round_robin_last = pick.id
        return pick
    if service.policy == "weighted":
        for k in available:
            k.current_weight += k.weight
        pick = max(by_id, key=lambda k: k.current_weight)  # the first of equals: lowest id
        pick.current_weight -= sum(k.weight for k in available)
        return pick
    assert service.policy == "least_recently_used", service.policy
    pick = min(by_id, key=lambda k: k.last_used)
    service.lru_sequence += 1
    pick.last_used = service.lru_sequence
    return pick


def _select_from_current(
    model: Model, service: ModelService, limits: dict[int, str | int | None], now_ms: int
) -> tuple[list[ModelKey], ModelKey | None]:
    """Manual and time: the usable keys seen walking from the pointer up to the pick, and the
    pick (None: every usable key at one of its limits)."""
    usable = [
        k for k in rotation.walk(service, service.pointer)
        if rotation.usable(service, k, now_ms)
    ]  # fmt: skip
    if not usable:
        return [], None
    current = usable[0]
    if current.id != service.pointer:
        if model.pointer_expired(service, now_ms):
            model.emit(
                "key.rotated",
                {"service": service.slug, "from_key_id": service.pointer,
                 "to_key_id": current.id, "reason": "expired"},
            )  # fmt: skip
        service.pointer = current.id
    pick = next((k for k in usable if limits[k.id] is None), None)
    if pick is None:
        return usable, None
    if service.policy == "time" and pick.entered_ms is None:
        pick.entered_ms = now_ms
    if pick is not current and limits[current.id] == "day":
        model.emit_daily(
            "key.rotated",
            {"service": service.slug, "from_key_id": current.id, "to_key_id": pick.id,
             "reason": "usage"},
            ("key.rotated", current.id),
            now_ms,
        )  # fmt: skip
    return usable, pick
