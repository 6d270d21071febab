"""The reference model of one tenant: its state, its clock-free counters and what it records.

The operations live beside it (delivery.py for a request, management.py for the rest); this
class holds what they share: the state, today's counters and the event log.
"""

from __future__ import annotations

from rotator.domain.reference import rotation
from rotator.domain.reference.access import Throttle
from rotator.domain.reference.state import (
    DAY_MS,
    DayCounts,
    ModelApp,
    ModelService,
    ModelTenant,
    Recorded,
)

KNOWN_DEVIATIONS: frozenset[str] = frozenset()
"""Where the scripts are known to break a stated rule, named so a test can ask the model to
predict the scripts' behaviour until the fix lands (each with a strict xfail in
tests/lua/test_model_findings.py; remove its name with the fix). None today:
docs/reference-model.md lists what was found and fixed."""


class Model:
    def __init__(
        self,
        *,
        demo: bool,
        demo_interval_ms: int,
        demo_burst: int,
        deviations: frozenset[str] = frozenset(),
    ) -> None:
        self.deviations = deviations
        """Names from KNOWN_DEVIATIONS the model follows the scripts in (default: none)."""
        self.tenant = ModelTenant(demo=demo)
        self.services: dict[str, ModelService] = {}
        self.apps: dict[int, ModelApp] = {}
        self.days: dict[int, DayCounts] = {}
        self.throttle = Throttle(demo_interval_ms, demo_burst)
        self.request_ids: dict[str, tuple[int, int | None]] = {}
        """A trusted proxy's request id -> the key its first attempt got and the caller's app
        id (None: the tenant's client token); the store keeps it 60 s of server time: longer
        than any test sequence."""
        self.service_windows: dict[str, list[int]] = {}
        """A service's deliveries while it had a per-minute limit (ms, oldest first), by slug
        (kept across policy and limit changes; deleting the service drops it)."""
        self.events: list[Recorded] = []
        """Everything recorded, in order (the test compares what was added by each step)."""

    def day(self, now_ms: int) -> DayCounts:
        """The UTC day's counters: every daily count and once-a-day flag starts afresh at
        midnight UTC."""
        return self.days.setdefault(now_ms // DAY_MS, DayCounts())

    def next_id(self) -> int:
        """Keys and apps draw their ids from one sequence per tenant, starting at 1."""
        self.tenant.last_id += 1
        return self.tenant.last_id

    def pointer_expired(self, service: ModelService, now_ms: int) -> bool:
        """Whether moving a time service's pointer on is reported as key.rotated, reason
        `expired`: when the key it names has expired."""
        return rotation.lifetime_ended(service, service.pointer, now_ms)

    def emit(self, event_type: str, data: dict) -> bool:
        """Record an event if the tenant subscribes to its type; whether it was recorded."""
        if event_type not in self.tenant.subscribed:
            return False
        self.events.append(Recorded(event_type, data))
        return True

    def emit_daily(self, event_type: str, data: dict, flag: tuple, now_ms: int) -> bool:
        """A once-a-day event: recorded at most once per UTC day and `flag`. The flag is set
        only when the event is recorded, so a tenant that subscribes later that day still
        hears of it (from the next request that meets the condition)."""
        counts = self.day(now_ms)
        if event_type not in self.tenant.subscribed or flag in counts.recorded:
            return False
        counts.recorded.add(flag)
        return self.emit(event_type, data)
