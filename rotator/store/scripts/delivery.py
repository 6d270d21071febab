"""Wrappers of the delivery path's scripts: next_key.lua (every delivery, on FastRedis) and
delivery_refund.lua (the compensating step when the picked key fails to decrypt).

Built per delivery, so the layouts are tuples and the replies NamedTuples (the cheapest
typed shapes to build in CPython); the argument names say the units.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rotator.domain.iprange import throttled_part
from rotator.store import keys
from rotator.store.scripts import decode, load
from rotator.store.scripts.call import Call, ScriptClient

NEXT_KEY = load("next_key")
NO_HINT: tuple[str, tuple[str, ...]] = ("", ())
_REFUND = load("delivery_refund")


class Picked(NamedTuple):
    """next_key.lua's 'ok' reply (see its header)."""

    key_id: int
    label: bytes | None
    ciphertext: bytes | None
    usage_today: int
    policy: bytes
    max_daily_requests: bytes
    """'' = none."""
    demo: int
    fresh_ids: bytes
    """The service's key ids when the caller's hint was stale, else ''."""
    receipt: bytes | None
    """The key.delivered entry id ('' none); None when a retry was answered (nothing counted)."""
    undo: bytes
    app_max_daily_requests: bytes
    quota: int
    remaining: int
    now_ms: int
    """The script's clock: the instant this delivery was counted at."""
    max_requests_per_minute: bytes
    """The service's per-minute limit; '' = none."""


class Refused(NamedTuple):
    """A rejection: status 'token' | 'ip' | 'throttle' | 'service' | 'rate' | 'limit' |
    'cooling' | 'nokeys'."""

    status: str
    detail: Any = None
    """wait_ms for 'throttle' and 'cooling' (until the first cooling key recovers); which
    limit ('service' | 'app' | 'key') for 'limit' and 'rate'."""
    now_ms: int = 0
    """The script's clock ('limit' only: when the counters start again is derived from it);
    for 'rate', the ms until the first per-minute slot frees."""


class NextKey:
    """next_key.lua's wrapper, built once per process with the arguments every delivery
    shares. Called on every delivery, so unlike the management wrappers it sends the script
    itself through the client's `evalsha` (the one call path) instead of building a `Call`
    first: a NamedTuple, a keyword call and the extra coroutine cost some 2 µs of the API's
    CPU a request (timeit, this machine)."""

    __slots__ = ("_record_ttl_ms", "_shared")

    def __init__(
        self,
        *,
        demo_interval_ms: str,
        demo_burst: str,
        usage_ttl_s: str,
        events_maxlen: str,
        request_record_ttl_ms: str,
    ) -> None:
        # ARGV[6..9], in the script's order
        self._shared = (demo_interval_ms, demo_burst, usage_ttl_s, events_maxlen)
        self._record_ttl_ms = request_record_ttl_ms

    async def __call__(
        self,
        client: ScriptClient,
        tenant: str,
        app_id: str,
        service: str,
        secret_hash: str,
        ip_hex: str,
        now_ms: str,
        request_id: str,
        ids_hint: tuple[str, tuple[str, ...]],
    ) -> Picked | Refused:
        """One delivery: pick, count and record. `app_id` '' = a tenant client token;
        `now_ms` '' = Redis TIME; `ids_hint`: the service's key ids as last seen, as text and
        split (NO_HINT = unknown)."""
        tag = "{t:" + tenant + "}"  # keys.tag, inlined: every delivery
        reply = await client.evalsha(
            NEXT_KEY,
            (
                tag + ":tenant",
                tag + ":app:" + app_id,
                tag + ":svc:" + service,
                tag + ":use:",  # the script appends the day of its clock (keys.usage_prefix)
                tag + ":gcra:" + throttled_part(ip_hex),  # IPv4 whole, IPv6 its /64
                tag + ":events",
                tag + ":rid:" + request_id,
                tag + ":wins:" + service,  # keys.service_window
                tag + ":wink:",  # keys.key_window_prefix: the script appends the key id
            ),
            (
                secret_hash,
                app_id,
                service,
                ip_hex,
                now_ms,
                *self._shared,
                request_id,
                self._record_ttl_ms,
                ids_hint[0],
                *ids_hint[1],
            ),
        )
        if reply[0] == b"ok":
            return Picked._make(reply[1:])
        return Refused(reply[0].decode(), *reply[1:])


def delivery_refund(
    tenant: str,
    service: str,
    key_id: int,
    *,
    app_id: str,
    day: int,
    request_id: str,
    receipt: bytes | None,
    undo: bytes | str,
    now_ms: str,
    void_ttl_ms: str,
    events_maxlen: str,
    usage_ttl_s: str,
) -> Call[int]:
    """Undo a delivery's counting after its key failed to decrypt, record key.decrypt_failed:
    the key's decrypt failures today. `day`: the day next_key counted in."""
    return Call(
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
            str(key_id),
            app_id,
            "-" if receipt is None else receipt,  # None: a retry answered, nothing counted
            undo,
            request_id,
            now_ms,
            void_ttl_ms,
            events_maxlen,
            usage_ttl_s,
        ),
        decode.integer,
    )
