"""What the reference model remembers of one tenant: the facts the delivery decisions read.

Plain mutable Structs, named for what they mean rather than for how the store spells them
(the store's layout is rotator/store/keys.py; the model must not depend on it).
"""

from __future__ import annotations

import ipaddress

import msgspec

from rotator.domain.health import HealthSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DAY_MS = 86_400_000
MINUTE_MS = 60_000


class ModelHealth(msgspec.Struct, kw_only=True):
    """What reports left on a key (reference/health.py); a person's enable clears it all."""

    cooldown_until_ms: int | None = None
    """Out of rotation until then; kept after it passes until the key is next delivered (or
    reported on), which records key.recovered."""
    failures: int = 0
    """5xx / no-response reports in the window that started at window_from_ms."""
    window_from_ms: int | None = None
    openings: int = 0
    """The circuit breaker's consecutive openings (its backoff); a 2xx clears them."""
    disabled_reason: str | None = None
    last_report: tuple[int, str | None, int] | None = None
    """(status, error, when) of the last report."""


class ModelKey(msgspec.Struct, kw_only=True):
    """A provider key of a service."""

    id: int
    label: str
    active: bool = True
    max_daily_requests: int | None = None
    entered_ms: int | None = None
    """Time policy: when the key entered rotation (its first delivery); None before, and
    cleared when the policy changes or a disabled or expired key is enabled again."""
    expiry_recorded: bool = False
    """The sweep has recorded key.expired for this lifetime (once per lifetime)."""
    weight: int = 1
    """Its share under the weighted policy."""
    max_requests_per_minute: int | None = None
    current_weight: int = 0
    """The weighted policy's running weight (nginx's smooth weighted round robin)."""
    last_used: int = 0
    """least_recently_used: the service's delivery sequence number at this key's last
    delivery under that policy; 0 = never."""
    window: list[int] = msgspec.field(default_factory=list)
    """When it was delivered while it had a per-minute limit (ms, oldest first)."""
    health: ModelHealth = msgspec.field(default_factory=ModelHealth)


class ModelService(msgspec.Struct, kw_only=True):
    slug: str
    policy: str
    max_daily_requests: int | None = None
    max_requests_per_minute: int | None = None
    limit_warning_percent: int | None = None
    ttl_ms: int | None = None
    """Time policy only: how long a key is delivered after it entered rotation."""
    keys: list[ModelKey] = msgspec.field(default_factory=list)
    """In rotation order (the order they were added)."""
    pointer: int | None = None
    """The manual primary, or the time policy's key in use (None: from the first key)."""
    manual_aside: int | None = None
    """The manual primary, kept while the service runs another policy."""
    no_active_recorded: bool = False
    """service.no_active_keys was recorded for this episode without a usable key."""
    round_robin_last: int = 0
    """round_robin: the id delivered last (0: none yet)."""
    lru_sequence: int = 0
    """least_recently_used: deliveries under that policy so far."""
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    """What reports do to its keys (rotator/domain/health.py: the defaults unless set)."""

    def key(self, key_id: int) -> ModelKey | None:
        return next((k for k in self.keys if k.id == key_id), None)


class ModelApp(msgspec.Struct, kw_only=True):
    id: int
    token_generation: int = 0
    """Which of the app's tokens works (a reissue makes the earlier ones fail)."""
    allowlist: list[Network] = msgspec.field(default_factory=list)
    max_daily_requests: int | None = None
    suspended: bool = False


class ModelTenant(msgspec.Struct, kw_only=True):
    demo: bool = False
    client_generation: int = 0
    """Which client token works (a reissue makes the earlier ones fail)."""
    suspended: bool = False
    allowlist: list[Network] = msgspec.field(default_factory=list)
    subscribed: frozenset[str] = frozenset()
    """Event types recorded (nothing is recorded for the others)."""
    last_id: int = 0
    """Keys and apps share one id sequence per tenant."""


class DayCounts(msgspec.Struct, kw_only=True):
    """One UTC day's counters and once-a-day event flags."""

    services: dict[str, int] = msgspec.field(default_factory=dict)
    keys: dict[int, int] = msgspec.field(default_factory=dict)
    apps: dict[int, int] = msgspec.field(default_factory=dict)
    reports: dict[tuple[str, str], int] = msgspec.field(default_factory=dict)
    """Reports per (service, status class)."""
    recorded: set[tuple] = msgspec.field(default_factory=set)
    """Once-a-day events recorded today, by what makes them distinct (see delivery.py)."""


class Recorded(msgspec.Struct, frozen=True):
    """An event as recorded: its type and data (the JSON object of the stream entry)."""

    type: str
    data: dict


class Credential(msgspec.Struct, frozen=True):
    """A token as the model knows it: whose it is and which generation."""

    app_id: int | None
    generation: int
