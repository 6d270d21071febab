"""Per-tenant event streams as the event pump sees them: entries -> Events, consumer-group I/O.

Scripts record an event with `XADD {t:T}:events MAXLEN ~ <cap> * type <type> data <JSON>`.
An event's id is `evt_<tenant>_<stream entry id>`: the same entry always yields the same id
(and the same body), which is what receivers deduplicate on and what the job queue collapses
duplicate enqueues by. Every command here names one key, so it runs on a Redis Cluster too.
"""

from __future__ import annotations

import msgspec
from redis.exceptions import ResponseError

from rotator.domain.clock import iso_ms
from rotator.domain.models import Event
from rotator.store import keys
from rotator.store.connection import Redis, as_str

GROUP = "webhooks"
"""The consumer group every pump joins: each entry goes to one consumer of the group."""

EVENT_ID_PREFIX = "evt_"

WITHDRAWABLE = frozenset(("key.delivered", "service.limit_reached"))
"""The event types delivery_refund.lua may take back (recorded by a delivery that then failed to
decrypt): only their delivery jobs check the tenant's withdrawn set before POSTing."""

_encode = msgspec.json.Encoder().encode
_decode_data = msgspec.json.Decoder(dict).decode

Entry = tuple[str, dict[bytes, bytes] | None]
"""(stream entry id, fields); fields is None for an entry trimmed away while pending."""


def event_id(tenant: str, entry_id: str) -> str:
    return f"{EVENT_ID_PREFIX}{tenant}_{entry_id}"


def parse_event_id(value: str) -> tuple[str, str]:
    """(tenant, stream entry id) of an event id; ValueError when it is not one."""
    if not value.startswith(EVENT_ID_PREFIX):
        raise ValueError("not an event id")
    tenant, sep, entry_id = value[len(EVENT_ID_PREFIX) :].rpartition("_")
    if not sep or not tenant or not entry_id:
        raise ValueError("not an event id")
    return tenant, entry_id


def created_at(entry_id: str) -> str:
    """The instant an entry was recorded (the ms part of a stream entry id), as ISO 8601."""
    return iso_ms(int(entry_id.partition("-")[0]))


def to_event(tenant: str, entry_id: str, fields: dict[bytes, bytes]) -> Event:
    """The Event an entry stands for; ValueError when the entry is malformed."""
    event_type = fields.get(b"type")
    if not event_type:
        raise ValueError("entry has no type")
    try:
        data = _decode_data(fields.get(b"data") or b"{}")
    except msgspec.DecodeError as exc:  # invalid JSON, or JSON but not an object
        raise ValueError(f"entry data is not a JSON object: {exc}") from None
    return Event(
        id=event_id(tenant, entry_id),
        type=event_type.decode(),  # invalid UTF-8: UnicodeDecodeError, a ValueError
        created_at=created_at(entry_id),
        tenant=tenant,
        data=data,
    )


async def withdrawn(redis: Redis, tenant: str, entry_id: str) -> bool:
    """Whether the entry was taken back by delivery_refund.lua after a pump had read it."""
    return await redis.zscore(keys.void(tenant), entry_id) is not None


def encode_event(event: Event) -> bytes:
    """The webhook body: the exact bytes that are signed and POSTed."""
    return _encode(event)


class EventStreams:
    """The pump's side of the per-tenant streams (consumer group GROUP)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def webhook_tenants(self) -> list[str]:
        """Tenants with a webhook configured (SSCAN: the set may be large)."""
        return [as_str(t) or "" async for t in self.redis.sscan_iter(keys.WEBHOOK_TENANTS)]

    async def ensure_group(self, tenant: str) -> None:
        """Create the group at id 0, so events recorded before the first pump ran are delivered.

        An entry is only ever recorded while the tenant subscribes (the scripts check
        `events`), so everything already in the stream is owed to the tenant. MKSTREAM lets
        the group exist before the first event does.
        """
        try:
            await self.redis.xgroup_create(keys.events(tenant), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_new(self, tenant: str, consumer: str, count: int) -> list[Entry]:
        """Up to `count` never-delivered entries, now pending for `consumer` until acked."""
        reply = await self.redis.xreadgroup(
            GROUP, consumer, {keys.events(tenant): ">"}, count=count
        )
        return _entries(reply[0][1]) if reply else []

    async def claim_stale(
        self, tenant: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Entry]:
        """Entries pending longer than `min_idle_ms` on any consumer (one that died), now ours.

        One XAUTOCLAIM call covers up to `count` pending entries; the caller loops while
        it returns a full batch.
        """
        reply = await self.redis.xautoclaim(
            keys.events(tenant), GROUP, consumer, min_idle_time=min_idle_ms, count=count
        )
        # reply: [next start id, claimed entries, (Redis 7+) ids deleted while pending]
        claimed = _entries(reply[1])
        if len(reply) > 2 and reply[2]:
            claimed.extend((as_str(i) or "", None) for i in reply[2])
        return claimed

    async def ack(self, tenant: str, entry_ids: list[str]) -> None:
        if entry_ids:
            await self.redis.xack(keys.events(tenant), GROUP, *entry_ids)

    async def prune_consumers(self, tenant: str, *, idle_ms: int, keep: str) -> int:
        """Forget consumers with nothing pending and idle longer than `idle_ms` (past workers).

        A consumer with pending entries is kept: its entries are reclaimed by XAUTOCLAIM
        first, after which it qualifies. Returns how many were removed.
        """
        removed = 0
        try:
            consumers = await self.redis.xinfo_consumers(keys.events(tenant), GROUP)
        except ResponseError:  # no stream or no group yet
            return 0
        for consumer in consumers:
            name = as_str(consumer["name"]) or ""
            # safe against a race: consumer names are unique per worker process, and a live
            # pump reads every pass (idle ~0), so one idle for idle_ms is gone and reads no more
            if name != keep and consumer["pending"] == 0 and consumer["idle"] > idle_ms:
                await self.redis.xgroup_delconsumer(keys.events(tenant), GROUP, name)
                removed += 1
        return removed


def _entries(raw: list) -> list[Entry]:
    out: list[Entry] = []
    for entry_id, fields in raw:
        out.append((as_str(entry_id) or "", fields or None))
    return out
