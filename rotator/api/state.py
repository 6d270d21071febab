"""What the handlers share: built once per process by create_app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rotator.api.secret_cache import SecretCache
from rotator.crypto import KeyRing
from rotator.domain.clientip import ClientIpResolver
from rotator.domain.clock import Clock, system_clock
from rotator.settings import Settings
from rotator.store.connection import Durability, Redis
from rotator.store_context import StoreContext
from rotator.tally import Tally

if TYPE_CHECKING:
    # for the annotation only: the lifespan imports the store when the app starts
    from rotator.metrics.fold import ApiFold
    from rotator.store.delivery import DeliveryStore
    from rotator.store.report import ReportStore
    from rotator.store.token_resolver import TokenResolver


@dataclass
class AppState(StoreContext):
    settings: Settings
    keyring: KeyRing
    clock: Clock = system_clock
    fixed_clock: bool = False
    """True when a test injected a clock: scripts then use it instead of Redis TIME."""
    redis: Redis | None = None
    durability: Durability = field(default_factory=Durability)
    client_ip: ClientIpResolver = field(default_factory=lambda: ClientIpResolver(()))
    delivery: DeliveryStore | None = None
    """The hot path's store (FastRedis and the scripts' wrappers): opened by the lifespan, so
    None only before the app starts serving."""
    tokens: TokenResolver | None = None
    """Finds an imported token's tenant (the index, cached): opened with `delivery`; every
    route that takes client or app tokens (GET /v1/next, POST /v1/report) asks it about a
    token `tokens.parse` refuses."""
    reports: ReportStore | None = None
    """POST /v1/report's store, on the delivery store's connection: opened with it."""
    tally: Tally = field(default_factory=Tally)
    """Deliveries by outcome since the last summary log line (or metrics fold)."""
    metrics: ApiFold | None = None
    """The metrics' in-process counts (rotator/metrics/fold.py); None with ROTATOR_METRICS=0."""
    secrets: SecretCache = field(init=False)
    """Provider keys this process has decrypted, by key and ciphertext (api/secret_cache.py)."""

    def __post_init__(self) -> None:
        self.secrets = SecretCache(self.keyring)

    def now_ms(self) -> int:
        return self.clock()
