"""What the handlers share: built once per process by create_app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rotator.crypto import KeyRing
from rotator.domain.clientip import ClientIpResolver
from rotator.domain.clock import Clock, system_clock
from rotator.settings import Settings
from rotator.store.connection import Durability, Redis
from rotator.tally import Tally


@dataclass
class AppState:
    settings: Settings
    keyring: KeyRing
    clock: Clock = system_clock
    fixed_clock: bool = False
    """True when a test injected a clock: scripts then use it instead of Redis TIME."""
    redis: Redis | None = None
    durability: Durability = field(default_factory=Durability)
    client_ip: ClientIpResolver = field(default_factory=lambda: ClientIpResolver(()))
    delivery: Any = None  # rotator.store.delivery.DeliveryStore, set in the lifespan
    tally: Tally = field(default_factory=Tally)
    """Deliveries by outcome since the last summary log line."""
