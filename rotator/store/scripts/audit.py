"""Wrappers of the audit scripts, and the one place a write script is sent audited.

`PENDING` holds the audit record of the management write in progress (set by
rotator/store/audit.py around the store function, which StoreContext.call runs). `Durable`
(call.py) asks `audited` for every script it sends: the first script of that write on the
write's tenant is sent as its audited variant (load_audited), which appends the record in
the same run if and only if the script changed something. So no store function and no
script names the audit log, and a write added later is recorded without a line for it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rotator.store import keys
from rotator.store.scripts import Script, decode, load, load_audited
from rotator.store.scripts import call as script_call

_APPEND = load("audit_append")
MS_PER_DAY = 86_400_000


@dataclass(slots=True)
class Pending:
    """The record of the write in progress, until a script of the write records it."""

    tenant: str | None
    record: bytes
    """The record as JSON (rotator/store/audit.py builds it)."""
    now_ms: int
    retention_ms: int
    events_maxlen: int
    recorded: bool = False


PENDING: contextvars.ContextVar[Pending | None] = contextvars.ContextVar(
    "rotator_audit_pending", default=None
)


def audited(
    script: Script, script_keys: Sequence[str], args: Sequence[Any]
) -> tuple[Script, list[str], list[Any], Pending] | None:
    """The audited form of this script call, when it is the first write of an audited
    operation on its tenant's slot; None to send it as it is."""
    pending = PENDING.get()
    if pending is None or pending.recorded or pending.tenant is None or not script_keys:
        return None
    if not script_keys[0].startswith(keys.tag(pending.tenant) + ":"):
        return None  # another slot (a registry): the record goes with the tenant's write
    t = pending.tenant
    return (
        load_audited(script.name),
        [*script_keys, keys.audit(t), keys.events(t), keys.tenant(t)],
        [*args, pending.record, pending.now_ms, pending.retention_ms, pending.events_maxlen],
        pending,
    )


def unwrap(pending: Pending, reply: list[Any]) -> Any:
    """The body's reply of an audited script; marks the record written when it was."""
    if int(reply[0]) == 1:
        pending.recorded = True
    return reply[1] if len(reply) > 1 else None


def append(
    stream: str,
    record: bytes,
    *,
    now_ms: int,
    retention_ms: int,
    tenant: str | None = None,
    events_maxlen: int = 0,
    event_type: str = "",
) -> script_call.Call[str | None]:
    """Append one record on its own (audit_append.lua); with `tenant`, to that tenant's log
    if it exists, and as an event."""
    stream_keys = [stream] if tenant is None else [stream, keys.events(tenant), keys.tenant(tenant)]
    return script_call.Call(
        _APPEND,
        stream_keys,
        (record, now_ms, retention_ms, events_maxlen, event_type),
        _entry_id,
    )


def _entry_id(reply: Any) -> str | None:
    """The appended entry's id; None when the tenant did not exist (nothing appended)."""
    return None if reply is None else decode.text(reply)
