"""Send test event (API, CLI and console): one webhook.test event in the tenant's stream.

Recorded like every other event (in the tenant's stream, by a script on its slot), so the
workers deliver and sign it the same way; only the subscription filter does not apply:
a tenant asks for a test event by clicking, whatever types it subscribes to.
"""

from __future__ import annotations

import msgspec

from rotator.domain.errors import Conflict
from rotator.domain.records import TestEventSent
from rotator.store.connection import Redis
from rotator.store.events import event_id
from rotator.store.scripts import tenants as scripts
from rotator.store.scripts.call import Plain, run

_encode = msgspec.json.Encoder().encode


async def send_test_event(redis: Redis, tenant: str, *, events_maxlen: int) -> TestEventSent:
    """Record a webhook.test event; Conflict when the tenant has no webhook (nothing would
    deliver it)."""
    data = {"message": "A test event from keyrotator: your receiver works."}
    entry = await run(
        Plain(redis), scripts.event_test(tenant, _encode(data), events_maxlen=events_maxlen)
    )
    if not entry:
        raise Conflict("no webhook_url is set: there is nowhere to send a test event")
    return TestEventSent(event_id=event_id(tenant, entry))
