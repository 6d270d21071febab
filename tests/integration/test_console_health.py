"""The console shows each key's health (cooling down until when, disabled and why, failures,
the last report), enables a key a report disabled, and edits the service's health settings."""

from __future__ import annotations

import pytest

from rotator.domain.clock import FakeClock
from tests.integration.console_support import field_errors, post_form, sign_in
from tests.integration.management import new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def report(client, t, key_id: int, status: int, **extra):
    body = {"service": "openai", "key_id": key_id, "status": status, **extra}
    r = await client.post("/v1/report", json=body, params={"token": t.client_token})
    assert r.status_code == 202, r.text


async def test_the_key_list_shows_health_in_words(client, clock: FakeClock):
    t = await new_tenant(client)
    await new_service(client, t)
    hot = (await new_key(client, t, label="Hot"))["id"]
    bad = (await new_key(client, t, label="Revoked"))["id"]
    await report(client, t, hot, 500)
    await report(client, t, hot, 429, retry_after=90, error="rate_limit_exceeded")
    await report(client, t, bad, 401, error="invalid_api_key")
    await sign_in(client, t.admin_token)
    page = (await client.get("/app/services/openai")).text
    assert "cooling down</span>" in page
    assert "Cooling down until 2026-03-01 12:01:30 UTC" in page
    assert "1 recent failure." in page
    assert "Last report: 429 rate_limit_exceeded, 2026-03-01 12:00:00 UTC." in page
    assert "Disabled because the provider answered 401: invalid_api_key." in page
    assert "<dt>Reports today</dt><dd>429: 1, 4xx: 1, 5xx: 1</dd>" in page

    r = await post_form(client, f"/app/services/openai/keys/{bad}", {"active": "1"})
    assert r.status_code == 303
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    revoked = next(k for k in listed if k["id"] == bad)
    assert (revoked["state"], revoked["disabled_reason"]) == ("active", None)
    page = (await client.get("/app/services/openai")).text
    assert "Disabled because" not in page


async def test_health_settings_on_the_service_form(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    form = {"slug": "openai", "policy": "usage", "cooldown_seconds": "45",
            "quota_reset_utc": "07:30"}  # fmt: skip
    r = await post_form(client, "/app/new-service", form)
    assert r.status_code == 303, r.text
    svc = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert (svc["cooldown_seconds"], svc["quota_reset_utc"], svc["failure_threshold"]) == (
        45, "07:30", 5
    )  # fmt: skip
    page = (await client.get("/app/services/openai/edit")).text
    assert 'name="cooldown_seconds" type="text" inputmode="numeric" value="45"' in page
    assert 'name="quota_reset_utc" type="text" value="07:30"' in page
    # each field in the words of rotator/domain/health.py, its default after them
    assert '<label for="failure_window_seconds">Failure window, seconds</label>' in page
    assert "How far back failures are counted. Default 60." in page

    r = await post_form(client, "/app/services/openai/edit",
                        {"policy": "usage", "failure_threshold": "0"})  # fmt: skip
    assert r.status_code == 400
    assert "failure_threshold" in field_errors(r)
    r = await post_form(client, "/app/services/openai/edit",
                        {"policy": "usage", "breaker_cooldown_seconds": "10"})  # fmt: skip
    assert r.status_code == 303
    svc = (await client.get("/v1/services/openai", headers=t.auth)).json()
    # an empty field is the default again
    assert (svc["breaker_cooldown_seconds"], svc["cooldown_seconds"]) == (10, 60)
