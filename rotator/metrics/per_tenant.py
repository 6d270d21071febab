"""The delivery store with its answers counted per tenant, for
`rotator_tenant_deliveries_total` (ROTATOR_METRICS_PER_TENANT=1).

A subclass, used only with the setting on: the plain DeliveryStore pays nothing for it.
"""

from __future__ import annotations

from rotator.domain.errors import InvalidToken, RotatorError
from rotator.domain.models import Delivery
from rotator.domain.tokens import ParsedToken
from rotator.store.delivery import DeliveryStore, refusal_error
from rotator.store.scripts.delivery import Refused


class PerTenantDeliveryStore(DeliveryStore):
    """Counts each answer of the store by tenant.

    Only answers given after the token was verified: the tenant of an `invalid token` is
    whatever the caller wrote, and counting it would let anyone add series at will. A
    dict increment per delivery."""

    per_tenant: dict[tuple[str, str], int]
    """Set by the app's lifespan once metrics are on (rotator.metrics.fold.ApiFold's)."""

    async def pick(
        self, token: ParsedToken, service: str, ip_hex: str, request_id: str = ""
    ) -> Delivery | Refused:
        found = await DeliveryStore.pick(self, token, service, ip_hex, request_id)
        if found.__class__ is Refused:
            error: RotatorError = refusal_error(found)  # type: ignore[arg-type]
            if isinstance(error, InvalidToken):
                return found
            key = (token.tenant, error.message)
        else:
            key = (token.tenant, "ok")
        self.per_tenant[key] = self.per_tenant.get(key, 0) + 1
        return found
