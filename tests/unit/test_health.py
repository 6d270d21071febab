"""rotator/domain/health.py: the settings' checks and the report classes usage counts by."""

from __future__ import annotations

import msgspec
import pytest

from rotator.domain import health
from rotator.domain.errors import InvalidField


@pytest.mark.parametrize(
    ("status", "klass"),
    [(0, "none"), (200, "2xx"), (299, "2xx"), (429, "429"), (401, "4xx"), (404, "4xx"),
     (500, "5xx"), (599, "5xx"), (101, "other"), (302, "other")],
)  # fmt: skip
def test_report_class(status, klass):
    assert health.report_class(status) == klass
    assert klass in health.REPORT_CLASSES


@pytest.mark.parametrize(("text", "minutes"), [("00:00", 0), ("07:30", 450), ("23:59", 1439)])
def test_quota_reset_round_trips(text, minutes):
    assert health.reset_minutes(text) == minutes
    assert health.reset_text(minutes) == text


@pytest.mark.parametrize("text", ["24:00", "7:30", "07:60", "0730", "07:3a", "٠٧:٣٠", 730, None])
def test_quota_reset_refuses_what_is_not_hh_mm(text):
    with pytest.raises(InvalidField) as exc:
        health.reset_minutes(text)
    assert exc.value.field == "quota_reset_utc"


def test_field_pairs_check_each_setting_and_none_means_the_default():
    assert health.field_pairs({"cooldown_seconds": 5, "quota_reset_utc": "01:00"}) == [
        "h_cd", "5", "h_reset", "60"
    ]  # fmt: skip
    assert health.field_pairs({"failure_threshold": None}) == ["h_fn", ""]
    with pytest.raises(InvalidField) as exc:
        health.field_pairs({"breaker_cooldown_seconds": 0})
    assert exc.value.field == "breaker_cooldown_seconds"
    assert health.from_hash({"cooldown_seconds": "", "quota_reset_utc": "90"}) == (
        health.HealthSettings(quota_reset_utc="01:30")
    )


def test_every_setting_is_stored_and_described_once():
    """A new health setting needs its hash field and its words, or the console and the CLI
    would leave it out."""
    names = list(msgspec.structs.asdict(health.DEFAULTS))
    assert list(health.FIELDS) == names
    assert list(health.DESCRIBED) == names
