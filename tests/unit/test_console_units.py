"""The console's pure parts: settings, the chart's geometry, friendly messages, cookies,
the CSRF secret's derivation."""

from __future__ import annotations

import base64
import ipaddress
import os

import pytest

from rotator.console.auth import parse_tenant_cookie
from rotator.console.charts import HEIGHT, WIDTH, daily_chart
from rotator.console.messages import field_error, friendly
from rotator.console.security import came_over_https, csrf_secret
from rotator.crypto import KeyRing
from rotator.domain.clientip import ClientIpResolver
from rotator.domain.errors import Conflict, InvalidField
from rotator.settings import Settings, SettingsError


def test_session_limits_are_settings_with_defaults_and_validation():
    s = Settings.from_env({"ROTATOR_SESSION_IDLE_MINUTES": "5", "ROTATOR_SESSION_MAX_HOURS": "2"})
    assert (s.session_idle_minutes, s.session_max_hours) == (5, 2)
    defaults = Settings.from_env({})
    assert (defaults.session_idle_minutes, defaults.session_max_hours) == (30, 12)
    with pytest.raises(SettingsError, match="ROTATOR_SESSION_IDLE_MINUTES"):
        Settings.from_env({"ROTATOR_SESSION_IDLE_MINUTES": "0"})
    with pytest.raises(SettingsError, match="ROTATOR_SESSION_MAX_HOURS"):
        Settings.from_env({"ROTATOR_SESSION_MAX_HOURS": "half a day"})


def test_the_chart_draws_oldest_left_scaled_to_the_peak():
    chart = daily_chart([("2026-03-03", 10), ("2026-03-02", 0), ("2026-03-01", 5)])
    assert [b.date for b in chart.bars] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert (chart.peak, chart.total, chart.days) == (10, 15, 3)
    oldest, empty, newest = chart.bars
    assert empty.height == 0 and newest.height == pytest.approx(2 * oldest.height)
    assert newest.y + newest.height == chart.baseline  # bars stand on the axis
    assert all(b.x >= 0 and b.x + b.width <= WIDTH and 0 <= b.y <= HEIGHT for b in chart.bars)
    assert daily_chart([("2026-03-01", 0)]).bars[0].height == 0  # no division by zero
    tiny = daily_chart([("2026-03-02", 100_000), ("2026-03-01", 1)]).bars[0]
    assert tiny.height >= 1  # a day with deliveries is never drawn as none


def test_store_messages_become_friendly_and_unknown_ones_pass_through():
    field, text = field_error(InvalidField("slug", "1-64 characters of a-z, …"), "x")
    assert field == "slug" and text.startswith("Use 1 to 64 characters")
    assert field_error(Conflict("service already exists"), "slug")[1].startswith("You already")
    assert friendly("name", "some new rule") == "Some new rule."  # as a sentence
    assert friendly("name", "a rule. Another one.") == "A rule. Another one."


@pytest.mark.parametrize(
    "value",
    [None, "", "nodot", ".secret", "UPPER.secret", "t.", "a" * 40 + ".s", "t." + "x" * 65],
)
def test_malformed_session_cookies_are_no_session(value):
    assert parse_tenant_cookie(value) is None


def test_a_well_formed_cookie_names_its_tenant():
    assert parse_tenant_cookie("abc123.s3cr3t-_x") == ("abc123", "s3cr3t-_x")


def test_the_csrf_secret_is_derived_from_the_sealing_key_only():
    a, b = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    assert csrf_secret(KeyRing.parse(a)) == csrf_secret(KeyRing.parse(a))
    assert csrf_secret(KeyRing.parse(a)) != csrf_secret(KeyRing.parse(b))
    assert csrf_secret(KeyRing.parse(f"one:{a},two:{b}")) == csrf_secret(KeyRing.parse(a))
    assert base64.b64decode(a).hex() not in csrf_secret(KeyRing.parse(a))


class FakeConnection:
    def __init__(self, scheme: str, peer: str, headers: dict[str, str]) -> None:
        self.scope = {"scheme": scheme, "client": (peer, 1234)}
        self.headers = headers


def test_https_is_believed_from_the_socket_or_a_trusted_proxy_only():
    trusted = ClientIpResolver([ipaddress.ip_network("10.0.0.0/8")])
    nobody = ClientIpResolver([])
    https = {"x-forwarded-proto": "https"}
    assert came_over_https(FakeConnection("https", "1.2.3.4", {}), nobody)
    assert came_over_https(FakeConnection("http", "10.1.1.1", https), trusted)
    assert not came_over_https(FakeConnection("http", "1.2.3.4", https), trusted)
    assert not came_over_https(FakeConnection("http", "10.1.1.1", https), nobody)
    assert not came_over_https(FakeConnection("http", "10.1.1.1", {}), trusted)
