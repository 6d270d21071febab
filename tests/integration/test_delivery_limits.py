"""GET /v1/next and its daily limits, as a client sees them: the app's limit in the body, the
IETF RateLimit headers of the tightest limit, and a 429 that says which limit and when to
retry (Retry-After: the end of the UTC day)."""

from __future__ import annotations

import json

import pytest

from rotator.domain.clock import DAY_MS, FakeClock, utc_day
from rotator.domain.models import EVENT_TYPES
from rotator.store import keys
from tests.integration.management import deliver, new_app, new_key, new_service, new_tenant

DELIVERY_EVENTS = [t for t in EVENT_TYPES if not t.startswith("audit.")]
"""Every event but the audit log's (its own tests: test_audit_log.py)."""

pytestmark = pytest.mark.backends("single", "cluster")

DAY_LIMIT = "service daily limit reached"


async def get(client, token: str, **params):
    key = "app_token" if token.startswith("kra_") else "token"
    return await client.get("/v1/next", params={"service": "openai", key: token, **params})


async def test_limits_in_the_body_keep_the_guides_fields(client):
    t = await new_tenant(client)
    await new_service(client, t, max_daily_requests=100)
    await new_key(client, t)
    app = await new_app(client, t, max_daily_requests=5)
    free_app = await new_app(client, t, name="free")

    body = (await get(client, t.client_token)).json()
    assert body["limits"] == {"max_daily_requests": 100}  # a client token: the guide's shape
    body = (await get(client, app["app_token"])).json()
    assert body["limits"] == {"max_daily_requests": 100, "app_max_daily_requests": 5}
    assert list(body) == ["service", "key_label", "key", "masked", "policy", "limits", "meta"]
    body = (await get(client, free_app["app_token"])).json()
    assert body["limits"] == {"max_daily_requests": 100, "app_max_daily_requests": None}


async def test_ratelimit_headers_name_the_tightest_daily_limit(client, clock: FakeClock):
    t = await new_tenant(client)
    await new_service(client, t, max_daily_requests=10)
    await new_key(client, t)
    app = await new_app(client, t, max_daily_requests=3)
    clock.now_ms = (utc_day(clock()) + 1) * DAY_MS - 3600_000  # 23:00 UTC: an hour to go

    r = await get(client, t.client_token)
    assert r.headers["ratelimit-policy"] == '"daily";q=10;w=86400'
    assert r.headers["ratelimit"] == '"daily";r=9;t=3600'
    r = await get(client, app["app_token"])  # the app has 2 left, the service 8: the app's
    assert r.headers["ratelimit-policy"] == '"daily";q=3;w=86400'
    assert r.headers["ratelimit"] == '"daily";r=2;t=3600'
    for _ in range(6):
        r = await get(client, t.client_token)
    # the service has 2 left, the app 2: the service's (the first of equals)
    r = await get(client, app["app_token"])
    assert (r.headers["ratelimit-policy"], r.headers["ratelimit"]) == (
        '"daily";q=10;w=86400', '"daily";r=1;t=3600'
    )  # fmt: skip

    await new_service(client, t, slug="free")
    await new_key(client, t, slug="free")
    r = await client.get("/v1/next", params={"service": "free", "token": t.client_token})
    assert r.status_code == 200
    assert "ratelimit" not in r.headers and "ratelimit-policy" not in r.headers


@pytest.mark.parametrize("which", ["service", "app", "key"])
async def test_a_daily_limit_429_says_which_and_when(client, clock: FakeClock, which):
    t = await new_tenant(client)
    await new_service(client, t, max_daily_requests=2 if which == "service" else None)
    await new_key(client, t, max_daily_requests=2 if which == "key" else None)
    app = await new_app(client, t, max_daily_requests=2 if which == "app" else None)
    clock.now_ms = (utc_day(clock()) + 1) * DAY_MS - 90_500  # 90.5 s before midnight
    for _ in range(2):
        assert (await get(client, app["app_token"])).status_code == 200
    r = await get(client, app["app_token"])
    assert r.status_code == 429
    assert r.json() == {"error": DAY_LIMIT, "limit": which, "retry_after": 91}
    assert r.headers["retry-after"] == "91"
    clock.now_ms += 90_500  # midnight: counters start again
    assert (await get(client, app["app_token"])).status_code == 200


async def test_limit_events_over_http(client, redis):
    t = await new_tenant(client)
    body = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": DELIVERY_EVENTS}
    await client.patch("/v1/tenant", json=body, headers=t.auth)
    await new_service(client, t, max_daily_requests=4, limit_warning_percent=50)
    await new_key(client, t)
    app = await new_app(client, t, max_daily_requests=1)
    assert (await get(client, app["app_token"])).status_code == 200
    assert (await get(client, app["app_token"])).status_code == 429
    for _ in range(4):
        await deliver(client, t.client_token)
    # raising the limit re-arms the event: reaching 5 is reported too
    await client.patch("/v1/services/openai", json={"max_daily_requests": 5}, headers=t.auth)
    for _ in range(2):
        await deliver(client, t.client_token)
    recorded = [
        (f[b"type"].decode(), json.loads(f[b"data"]))
        for _, f in await redis.xrange(keys.events(t.id))
        if f[b"type"] != b"key.delivered"
    ]
    assert recorded == [
        ("app.limit_reached", {"service": "openai", "app_id": app["id"], "limit": 1}),
        ("service.limit_warning",
         {"service": "openai", "limit": 4, "limit_warning_percent": 50, "usage_today": 2}),
        ("service.limit_reached", {"service": "openai", "scope": "service", "limit": 4}),
        ("service.limit_reached", {"service": "openai", "scope": "service", "limit": 5}),
    ]  # fmt: skip
