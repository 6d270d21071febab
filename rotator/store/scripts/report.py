"""Wrapper of report.lua: a client's report of what the provider answered (key health).

Called like a delivery (FastRedis, one EVALSHA), so it also sends the script straight through
the client's `evalsha`; the reply is a NamedTuple.
"""

from __future__ import annotations

from typing import NamedTuple

from rotator.domain import health
from rotator.store.scripts import load
from rotator.store.scripts.call import ScriptClient

REPORT = load("report")
_QUOTA = "," + ",".join(health.QUOTA_ERRORS) + ","
_D = health.DEFAULTS
_DEFAULTS = (
    _QUOTA,
    str(_D.cooldown_seconds),
    str(_D.max_cooldown_seconds),
    str(health.reset_minutes(_D.quota_reset_utc)),
    str(_D.failure_threshold),
    str(_D.failure_window_seconds),
    str(_D.breaker_cooldown_seconds),
)  # ARGV[10..16], in the script's order


class Reported(NamedTuple):
    """report.lua's 'ok' reply."""

    state: str
    cooldown_until_ms: int | None
    now_ms: int


class ReportRefused(NamedTuple):
    status: str
    """'token' | 'ip' | 'service' | 'key'."""


async def report(
    client: ScriptClient,
    tenant: str,
    app_id: str,
    service: str,
    secret_hash: str,
    ip_hex: str,
    now_ms: str,
    *,
    key_id: int,
    status: int,
    retry_after_s: int | None,
    error: str,
    usage_ttl_s: str,
    events_maxlen: str,
) -> Reported | ReportRefused:
    """One report, atomically: `app_id` '' = a tenant client token; `now_ms` '' = Redis TIME;
    `error` lower-cased ('' = none)."""
    tag = "{t:" + tenant + "}"
    reply = await client.evalsha(
        REPORT,
        (
            tag + ":tenant",
            tag + ":app:" + app_id,
            tag + ":svc:" + service,
            tag + ":use:",  # the script appends the day of its clock (keys.usage_prefix)
            tag + ":events",
        ),
        (
            secret_hash,
            app_id,
            service,
            ip_hex,
            now_ms,
            str(key_id),
            str(status),
            "" if retry_after_s is None else str(retry_after_s),
            error,
            *_DEFAULTS,
            usage_ttl_s,
            events_maxlen,
        ),
    )
    if reply[0] != b"ok":
        return ReportRefused(reply[0].decode())
    return Reported(reply[1].decode(), int(reply[2]) if reply[2] else None, int(reply[3]))
