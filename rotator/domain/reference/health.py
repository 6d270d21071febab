"""One report (POST /v1/report), step by step: what the provider's answer does to a key.

Steps, in order; the first that refuses answers, and a refused report changes nothing:

1. token      the latest token of the tenant or of one of its apps (access.token_ok): 403
2. allowlist  the client in the tenant's allowlist and, for an app token, the app's: 403
3. service    it exists: 404; 4. key: a key of that service: 404
5. count      today's reports of the service by status class; the key's last report
6. decide     (rotator/domain/health.py states the rules), on an active key only (a disabled
              one waits for a person), and never for a demo tenant (its token is public):
              2xx: failures and breaker cleared; a quota error (any status): cooling until
              the service's quota reset time; 401/403: disabled with a reason (its failures
              and cooldown cleared); 429: cooling for retry_after (at least 1 s) or the
              service's cooldown, capped; 5xx or none (status 0), when not cooling already:
              a failure in the window (a new window when the last one ended); at the
              threshold the breaker opens: cooling for the breaker cooldown doubled per
              consecutive opening (capped), failures left one short in a window starting
              when the cooldown ends (half-open). A cooldown never shortens one already
              running; key.cooling_down is recorded when a key starts cooling, not when its
              cooldown is lengthened.
7. answer     the key's state: disabled, expired, cooling_down or active, with the end of its
              cooldown while it cools down (an expired key may cool down too)
"""

from __future__ import annotations

from rotator.domain import health
from rotator.domain.reference import rotation
from rotator.domain.reference.access import address, allowed, token_ok
from rotator.domain.reference.model import Model
from rotator.domain.reference.state import DAY_MS, Credential

Reported = tuple[str, int | None]
"""(state, cooldown_until_ms or None) of a 202; a refusal is its kind: 'token', 'ip',
'service' or 'key'."""


def report(
    model: Model,
    credential: Credential,
    slug: str,
    key_id: int,
    status: int,
    retry_after_s: int | None,
    error: str,
    client_ip: str,
    now_ms: int,
) -> Reported | str:
    tenant = model.tenant
    app = model.apps.get(credential.app_id) if credential.app_id is not None else None
    if not token_ok(tenant, app, credential):
        return "token"
    client = address(client_ip)
    if not allowed(tenant.allowlist, client) or (app and not allowed(app.allowlist, client)):
        return "ip"
    service = model.services.get(slug)
    if service is None:
        return "service"
    key = service.key(key_id)
    if key is None:
        return "key"
    counts = model.day(now_ms)
    kind = (slug, health.report_class(status))
    counts.reports[kind] = counts.reports.get(kind, 0) + 1
    h, s = key.health, service.health
    h.last_report = (status, error or None, now_ms)

    def cool(until_ms: int, reason: str) -> None:
        was_cooling = rotation.cooling(key, now_ms)
        if was_cooling and h.cooldown_until_ms is not None and h.cooldown_until_ms >= until_ms:
            return
        h.cooldown_until_ms = until_ms
        if not was_cooling:
            data = {"service": slug, "key_id": key_id, "reason": reason, "status": status,
                    "cooldown_until_ms": until_ms}  # fmt: skip
            model.emit("key.cooling_down", data)

    klass = health.report_class(status)
    if not key.active or tenant.demo:
        pass
    elif klass == "2xx":
        h.failures, h.window_from_ms, h.openings = 0, None, 0
    elif error in health.QUOTA_ERRORS:
        reset_ms = now_ms // DAY_MS * DAY_MS + health.reset_minutes(s.quota_reset_utc) * 60_000
        cool(reset_ms if reset_ms > now_ms else reset_ms + DAY_MS, "quota")
    elif status in (401, 403):
        reason = f"provider answered {status}" + (f": {error}" if error else "")
        key.active = False
        h.disabled_reason = reason
        h.failures, h.window_from_ms, h.openings, h.cooldown_until_ms = 0, None, 0, None
        model.emit("key.disabled", {"service": slug, "key_id": key_id, "reason": reason})
    elif klass == "429":
        wait_s = s.cooldown_seconds if retry_after_s is None else retry_after_s
        cool(now_ms + min(max(wait_s, 1), s.max_cooldown_seconds) * 1000, "rate_limited")
    elif klass in ("5xx", "none") and not rotation.cooling(key, now_ms):
        failures, window_from = h.failures, h.window_from_ms
        if window_from is None or now_ms >= window_from + s.failure_window_seconds * 1000:
            failures, window_from = 0, now_ms
        failures += 1
        if failures >= s.failure_threshold:
            h.openings += 1
            wait_s = min(s.breaker_cooldown_seconds * 2 ** (h.openings - 1), s.max_cooldown_seconds)
            cool(now_ms + wait_s * 1000, "failures")
            h.failures, h.window_from_ms = s.failure_threshold - 1, h.cooldown_until_ms
        else:
            h.failures, h.window_from_ms = failures, window_from
    # cooldown_until whenever it cools down (an expired key may too), as listings show it
    until = h.cooldown_until_ms if rotation.cooling(key, now_ms) else None
    if not key.active:
        return ("disabled", None)
    if rotation.expired(service, key, now_ms):
        return ("expired", until)
    if until is not None:
        return ("cooling_down", until)
    return ("active", None)
