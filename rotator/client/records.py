"""What the rotator answers, as the client reads it: `/v1/next`'s 200 and `/v1/report`'s 202.

The field names are the API's (SPEC §1, §7; tests/unit/test_client_records.py holds them
to the server's own record). These are the client's own Structs rather than the server's:
the client must read any server version, so every field a newer server added is optional
here and unknown fields are ignored, where the server's records describe exactly what it
sends.
"""

from __future__ import annotations

import msgspec


class KeyLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The limits that apply to this delivery; null (None) means no such limit."""

    max_daily_requests: int | None = None
    app_max_daily_requests: int | None = None
    """An app token's own daily limit; None for a tenant client token or no limit."""
    max_requests_per_minute: int | None = None


class KeyMeta(msgspec.Struct, frozen=True, kw_only=True):
    key_id: int
    """Unique within the tenant: what a report names."""
    usage_today: int
    """Today's (UTC) deliveries of this key, this one included."""


class Key(msgspec.Struct, frozen=True, kw_only=True):
    """The key to use now (`GET /v1/next`'s 200). Its repr hides `key`, so a log line or a
    traceback that shows the record does not show the secret."""

    service: str
    key_label: str
    key: str
    """The provider key itself (masked when `masked`: then it is only for display)."""
    masked: bool
    policy: str
    limits: KeyLimits
    meta: KeyMeta

    @property
    def key_id(self) -> int:
        return self.meta.key_id

    def __repr__(self) -> str:
        return (
            f"Key(service={self.service!r}, key_label={self.key_label!r}, key=<hidden>, "
            f"masked={self.masked!r}, policy={self.policy!r}, limits={self.limits!r}, "
            f"meta={self.meta!r})"
        )

    __str__ = __repr__

    def __rich_repr__(self):  # rich's pretty printer asks msgspec for the fields otherwise
        yield from (
            (f, "<hidden>" if f == "key" else getattr(self, f)) for f in self.__struct_fields__
        )


class ReportResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a report did to the key (`POST /v1/report`'s 202)."""

    state: str
    """`active`, `cooling_down`, `disabled` or `expired`."""
    cooldown_until: str | None = None
    """When a cooling key is delivered again (ISO 8601, UTC, as the API's other times)."""
