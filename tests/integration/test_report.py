"""POST /v1/report as a client sees it: what each report does to the key (cooldowns, disabling,
the circuit breaker), what deliveries then hand out, and the events recorded, on the injected
clock."""

from __future__ import annotations

import json

import pytest

from rotator.domain.clock import DAY_MS, FakeClock, iso_ms, utc_day
from rotator.domain.models import EVENT_TYPES
from rotator.store import keys
from tests.integration.management import deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def report(client, token: str, key_id: int, status: int, service: str = "openai", **extra):
    body = {"service": service, "key_id": key_id, "status": status, **extra}
    return await client.post("/v1/report", json=body, headers={"Authorization": f"Bearer {token}"})


async def setup(client, n_keys: int = 2, policy: str = "usage", **service):
    t = await new_tenant(client)
    body = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": list(EVENT_TYPES)}
    assert (await client.patch("/v1/tenant", json=body, headers=t.auth)).status_code == 200
    await new_service(client, t, policy=policy, **service)
    ids = [(await new_key(client, t, label=f"k{i}"))["id"] for i in range(n_keys)]
    return t, ids


async def delivered(client, t, times: int = 6) -> set[int]:
    seen = set()
    for _ in range(times):
        r = await deliver(client, t.client_token)
        assert r.status_code == 200, r.text
        seen.add(r.json()["meta"]["key_id"])
    return seen


async def health_events(redis, t) -> list[tuple[str, dict]]:
    return [
        (f[b"type"].decode(), json.loads(f[b"data"]))
        for _, f in await redis.xrange(keys.events(t.id))
        if f[b"type"] in (b"key.cooling_down", b"key.recovered", b"key.disabled")
    ]


async def key_of(client, t, key_id: int) -> dict:
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    return next(k for k in listed if k["id"] == key_id)


async def test_429_cools_the_key_for_retry_after_then_it_recovers(client, clock: FakeClock, redis):
    t, (a, b) = await setup(client)
    r = await report(client, t.client_token, a, 429, retry_after=20, error="rate_limit_exceeded")
    until = iso_ms(clock() + 20_000)
    assert (r.status_code, r.json()) == (202, {"state": "cooling_down", "cooldown_until": until})
    assert await delivered(client, t) == {b}
    k = await key_of(client, t, a)
    assert (k["state"], k["cooldown_until"], k["failures"]) == ("cooling_down", until, 0)
    assert k["last_report"] == {"status": 429, "error": "rate_limit_exceeded",
                                "reported_at": iso_ms(clock())}  # fmt: skip

    clock.now_ms += 19_999
    assert await delivered(client, t) == {b}
    clock.now_ms += 1  # the cooldown ends: the key is delivered again, by itself (the least
    assert await delivered(client, t, 1) == {a}  # used today: the usage policy's pick)
    assert (await key_of(client, t, a))["state"] == "active"
    assert await health_events(redis, t) == [
        ("key.cooling_down", {"service": "openai", "key_id": a, "reason": "rate_limited",
                              "status": 429, "cooldown_until_ms": clock()}),
        ("key.recovered", {"service": "openai", "key_id": a}),
    ]  # fmt: skip


async def test_429_without_retry_after_uses_the_default_and_a_long_one_is_capped(
    client, clock: FakeClock
):
    t, (a, b) = await setup(client)
    r = await report(client, t.client_token, a, 429)
    assert r.json()["cooldown_until"] == iso_ms(clock() + 60_000)
    r = await report(client, t.client_token, b, 429, retry_after=10**6)
    assert r.json()["cooldown_until"] == iso_ms(clock() + 3_600_000)
    # a shorter 429 never shortens a running cooldown
    r = await report(client, t.client_token, b, 429, retry_after=5)
    assert r.json()["cooldown_until"] == iso_ms(clock() + 3_600_000)


async def test_every_key_cooling_answers_503_with_retry_after_until_the_first_recovers(
    client, clock: FakeClock
):
    t, (a, b) = await setup(client)
    await report(client, t.client_token, a, 429, retry_after=30)
    await report(client, t.client_token, b, 429, retry_after=10)
    clock.now_ms += 500
    r = await deliver(client, t.client_token)
    assert r.status_code == 503
    assert r.json() == {"error": "no active keys"}
    assert r.headers["retry-after"] == "10"  # 9.5 s, rounded up
    clock.now_ms += 9_500
    assert await delivered(client, t, 2) == {b}


async def test_disabled_only_answers_503_without_retry_after(client):
    t, (a,) = await setup(client, n_keys=1)
    await report(client, t.client_token, a, 401)
    r = await deliver(client, t.client_token)
    assert (r.status_code, r.json()) == (503, {"error": "no active keys"})
    assert "retry-after" not in r.headers


async def test_quota_error_cools_until_the_providers_day_resets(client, clock: FakeClock):
    t, (a, b) = await setup(client)
    r = await report(client, t.client_token, a, 429, retry_after=5, error="insufficient_quota")
    midnight = (utc_day(clock()) + 1) * DAY_MS
    assert r.json() == {"state": "cooling_down", "cooldown_until": iso_ms(midnight)}
    clock.now_ms = midnight - 1
    assert await delivered(client, t) == {b}
    clock.now_ms = midnight
    assert a in await delivered(client, t)


@pytest.mark.parametrize("status", [401, 403])
async def test_401_403_disable_until_a_person_enables(client, clock: FakeClock, redis, status):
    t, (a, b) = await setup(client)
    r = await report(client, t.client_token, a, status, error="invalid_api_key")
    assert (r.status_code, r.json()) == (202, {"state": "disabled"})
    clock.now_ms += 10 * DAY_MS
    assert await delivered(client, t) == {b}
    k = await key_of(client, t, a)
    reason = f"provider answered {status}: invalid_api_key"
    assert (k["state"], k["active"], k["disabled_reason"]) == ("disabled", False, reason)
    assert await health_events(redis, t) == [
        ("key.disabled", {"service": "openai", "key_id": a, "reason": reason})
    ]
    # a later 2xx report (a request made before) does not bring it back
    assert (await report(client, t.client_token, a, 200)).json() == {"state": "disabled"}

    r = await client.patch(f"/v1/services/openai/keys/{a}", json={"active": True}, headers=t.auth)
    assert (r.json()["state"], r.json()["disabled_reason"]) == ("active", None)
    assert await delivered(client, t, 1) == {a}


async def test_failures_open_the_breaker_then_half_open_and_backoff(client, clock: FakeClock):
    t, (a, _) = await setup(client)
    for status in (500, 502, 0, 503):  # status 0: no response (a timeout)
        r = await report(client, t.client_token, a, status)
        assert r.json() == {"state": "active"}
        clock.now_ms += 1000
    assert (await key_of(client, t, a))["failures"] == 4
    r = await report(client, t.client_token, a, 504)  # the 5th within 60 s: open, 30 s
    assert r.json() == {"state": "cooling_down", "cooldown_until": iso_ms(clock() + 30_000)}
    # reports of requests made before the cooldown do not count again
    assert (await report(client, t.client_token, a, 500)).json()["state"] == "cooling_down"
    clock.now_ms += 30_000
    assert a in await delivered(client, t)  # half-open: delivered again
    # one failure re-opens it, for twice as long
    r = await report(client, t.client_token, a, 500)
    assert r.json() == {"state": "cooling_down", "cooldown_until": iso_ms(clock() + 60_000)}
    clock.now_ms += 60_000
    # a success closes it: the count starts again from nothing
    assert (await report(client, t.client_token, a, 200)).json() == {"state": "active"}
    assert (await key_of(client, t, a))["failures"] == 0
    for _ in range(4):
        assert (await report(client, t.client_token, a, 500)).json() == {"state": "active"}


async def test_failures_outside_the_window_start_a_new_count(client, clock: FakeClock):
    t, (a, _) = await setup(client)
    for _ in range(4):
        await report(client, t.client_token, a, 500)
    clock.now_ms += 60_000
    assert (await report(client, t.client_token, a, 500)).json() == {"state": "active"}
    assert (await key_of(client, t, a))["failures"] == 1


async def test_2xx_resets_the_failure_count(client):
    t, (a, _) = await setup(client)
    for _ in range(4):
        await report(client, t.client_token, a, 500)
    assert (await report(client, t.client_token, a, 204)).json() == {"state": "active"}
    for _ in range(4):
        assert (await report(client, t.client_token, a, 500)).json() == {"state": "active"}


async def test_other_4xx_change_nothing(client):
    t, (a, _) = await setup(client)
    for status in (400, 404, 422):
        assert (await report(client, t.client_token, a, status)).json() == {"state": "active"}
    assert (await key_of(client, t, a))["failures"] == 0


@pytest.mark.parametrize("policy", ["manual", "time"])
async def test_a_cooling_current_key_hands_over_to_the_next(client, clock: FakeClock, policy):
    extra = {"key_ttl_minutes": 60} if policy == "time" else {}
    t, (a, b) = await setup(client, policy=policy, **extra)
    assert await delivered(client, t, 2) == {a}
    await report(client, t.client_token, a, 429, retry_after=10)
    assert await delivered(client, t, 2) == {b}
    keys_now = {k["id"]: k for k in (await client.get(
        "/v1/services/openai/keys", headers=t.auth)).json()}  # fmt: skip
    assert (keys_now[a]["current"], keys_now[b]["current"]) == (False, True)
    # the next key stays current after the cooldown (as after a person disabled one)
    clock.now_ms += 10_000
    assert await delivered(client, t, 2) == {b}


async def test_rotate_moves_to_a_key_whose_cooldown_has_ended(client, clock: FakeClock, redis):
    # a manual service's spare key is never delivered, so the entry of a cooldown that has
    # ended stays in the store; rotate must read it as over, as deliveries and listings do
    t, (a, b, c) = await setup(client, n_keys=3, policy="manual")
    assert await delivered(client, t, 1) == {a}
    await report(client, t.client_token, b, 429, retry_after=10)
    clock.now_ms += 10_000
    assert (await key_of(client, t, b))["state"] == "active"
    r = await client.post("/v1/services/openai/rotate", headers=t.auth)
    assert (r.status_code, r.json()["from_key_id"], r.json()["to_key_id"]) == (200, a, b)
    assert await delivered(client, t, 1) == {b}

    # nor is the primary itself skipped when its own cooldown ended before any delivery
    await report(client, t.client_token, b, 429, retry_after=10)
    clock.now_ms += 10_000
    r = await client.post("/v1/services/openai/rotate", headers=t.auth)
    assert (r.json()["from_key_id"], r.json()["to_key_id"]) == (b, c)


async def test_reports_counted_by_status_class_in_usage(client):
    t, (a, _) = await setup(client)
    await delivered(client, t, 3)
    for status in (200, 201, 429, 500, 0, 404):
        await report(client, t.client_token, a, status)
    usage = (await client.get("/v1/services/openai/usage?days=1", headers=t.auth)).json()
    today = usage["days"][0]
    assert today["total"] == 3
    assert today["reports"] == {"2xx": 2, "429": 1, "4xx": 1, "5xx": 1, "none": 1, "other": 0}


async def test_a_demo_tenants_reports_are_counted_but_change_no_key(client, redis):
    # its client token is public: else anyone could disable or cool down every demo key
    t = await new_tenant(client, "demo", demo=True)
    await new_service(client, t)
    a = (await new_key(client, t))["id"]
    for status, extra in ((401, {}), (403, {}), (429, {"retry_after": 60}), (200, {}),
                          (200, {"error": "insufficient_quota"})):  # fmt: skip
        r = await report(client, t.client_token, a, status, **extra)
        assert (r.status_code, r.json()) == (202, {"state": "active"})
    for _ in range(10):
        assert (await report(client, t.client_token, a, 503)).json() == {"state": "active"}
    k = await key_of(client, t, a)
    assert (k["state"], k["failures"], k["disabled_reason"]) == ("active", 0, None)
    assert k["last_report"]["status"] == 503
    assert (await deliver(client, t.client_token)).status_code == 200
    usage = (await client.get("/v1/services/openai/usage?days=1", headers=t.auth)).json()
    assert usage["days"][0]["reports"] == {"2xx": 2, "429": 1, "4xx": 2, "5xx": 10, "none": 0,
                                           "other": 0}  # fmt: skip
    assert await health_events(redis, t) == []


async def test_service_health_settings_change_what_reports_do(client, clock: FakeClock):
    settings = {"cooldown_seconds": 5, "max_cooldown_seconds": 100, "quota_reset_utc": "07:30",
                "failure_threshold": 2, "failure_window_seconds": 10,
                "breaker_cooldown_seconds": 40}  # fmt: skip
    t, (a, b) = await setup(client, **settings)
    svc = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert {k: svc[k] for k in settings} == settings
    assert (await report(client, t.client_token, a, 429)).json()["cooldown_until"] == iso_ms(
        clock() + 5_000
    )
    r = await report(client, t.client_token, b, 429, retry_after=500)
    assert r.json()["cooldown_until"] == iso_ms(clock() + 100_000)  # the cap
    clock.now_ms += 100_000
    await report(client, t.client_token, a, 500)
    r = await report(client, t.client_token, a, 500)  # the 2nd within 10 s opens it
    assert r.json()["cooldown_until"] == iso_ms(clock() + 40_000)
    clock.now_ms += 40_000
    r = await report(client, t.client_token, b, 429, error="insufficient_quota")
    day_start = utc_day(clock()) * DAY_MS
    reset = day_start + 450 * 60_000  # 07:30 UTC, today's or tomorrow's
    assert r.json()["cooldown_until"] == iso_ms(reset if reset > clock() else reset + DAY_MS)

    # null: back to the default
    r = await client.patch("/v1/services/openai", json={"cooldown_seconds": None},
                           headers=t.auth)  # fmt: skip
    assert r.json()["cooldown_seconds"] == 60


@pytest.mark.parametrize(
    ("field", "value"),
    [("cooldown_seconds", 0), ("max_cooldown_seconds", "x"), ("quota_reset_utc", "24:00"),
     ("quota_reset_utc", "7:30"), ("failure_threshold", 0), ("failure_window_seconds", True),
     ("breaker_cooldown_seconds", 10**9)],
)  # fmt: skip
async def test_bad_health_settings_are_refused_naming_the_field(client, field, value):
    t = await new_tenant(client)
    r = await client.post(
        "/v1/services", json={"slug": "openai", "policy": "usage", field: value}, headers=t.auth
    )
    assert (r.status_code, r.json()["field"]) == (400, field)
    await new_service(client, t)
    r = await client.patch("/v1/services/openai", json={field: value}, headers=t.auth)
    assert (r.status_code, r.json()["field"]) == (400, field)
