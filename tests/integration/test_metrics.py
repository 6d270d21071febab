"""/metrics after a scripted mix of deliveries and management requests: exact counts.

The metrics are process-wide (the app's processes share them, as in production), so each
test compares a scrape after its requests with one before them."""

from __future__ import annotations

import pytest

from rotator.domain import tokens
from rotator.store import keys
from tests.conftest import OPERATOR_TOKEN
from tests.integration.metrics_support import AUTH, delta, scrape, value
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyzZZZZ"


async def seeded(redis, settings, max_daily: int) -> str:
    t = await seed.tenant(redis)
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    for service in ("openai", "copies"):  # the service hash holds copies of the token hash
        await seed.service(redis, t, service, policy="usage", max_daily=max_daily)
    await seed.key(redis, settings.keyring, t, "openai", SECRET, label="Primary")
    return minted.token


async def test_a_scripted_mix_is_counted_exactly(client, redis, settings):
    token = await seeded(redis, settings, max_daily=3)
    wrong = tokens.mint_client(token.split("_")[1]).token  # well formed: the store refuses it
    before = await scrape(client)

    async def next_(**params: str) -> int:
        return (await client.get("/v1/next", params=params)).status_code

    assert [await next_(service="openai", token=token) for _ in range(5)] == [200] * 3 + [429] * 2
    assert await next_(service="openai", token=wrong) == 403
    assert await next_(service="nope", token=token) == 404
    assert await next_(service="copies", token=token) == 503  # no keys
    assert await next_(service="openai") == 400
    assert (await client.get("/v1/admin/tenants", headers=AUTH)).status_code == 200
    assert (await client.get("/v1/admin/tenants")).status_code == 401
    after = await scrape(client)

    deliveries = {
        outcome: delta(before, after, "rotator_deliveries_total", outcome=outcome)
        for outcome in (
            "ok",
            "service daily limit reached",
            "invalid token",
            "unknown service",
            "no active keys",
            "missing token or service",
        )
    }
    assert deliveries == {
        "ok": 3,
        "service daily limit reached": 2,
        "invalid token": 1,
        "unknown service": 1,
        "no active keys": 1,
        "missing token or service": 1,
    }
    # every request on the path is timed; all but the one without a token reached the store
    count = "rotator_delivery_duration_seconds_count"
    assert delta(before, after, count) == 9
    assert delta(before, after, "rotator_store_round_trip_seconds_count") == 8
    assert delta(before, after, "rotator_delivery_duration_seconds_bucket", le="+Inf") == 9
    assert delta(before, after, "rotator_delivery_duration_seconds_sum") > 0
    assert delta(before, after, "rotator_store_write_batch_size_count") >= 8
    routes = {"route": "/v1/admin/tenants", "method": "GET"}
    requests = "rotator_management_requests_total"
    assert delta(before, after, requests, status="200", **routes) == 1
    assert delta(before, after, requests, status="401", **routes) == 1
    # no label holds a tenant id or a token
    assert token.split("_")[1] not in str(after)
    assert value(after, "rotator_api_processes") == 1


async def test_metrics_need_the_operator_token(client):
    assert (await client.get("/metrics")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    r = await client.get("/metrics", headers=bad)
    assert r.status_code == 401
    assert r.json() == {"error": "invalid or missing metrics token"}


@pytest.mark.backends("single")
async def test_a_metrics_token_replaces_the_operator_token(settings, redis, clock):
    import dataclasses

    from rotator.api.app import create_app
    from tests.asgi import app_client

    app = create_app(
        dataclasses.replace(settings, metrics_token="scrape-me-0123456789"), clock=clock
    )
    async with app_client(app) as client:
        own = {"Authorization": "Bearer scrape-me-0123456789"}
        assert (await client.get("/metrics", headers=own)).status_code == 200
        operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        assert (await client.get("/metrics", headers=operator)).status_code == 401


@pytest.mark.backends("single")
async def test_metrics_off_serves_no_metrics(settings, redis, clock):
    import dataclasses

    from rotator.api.app import create_app
    from tests.asgi import app_client

    async with app_client(
        create_app(dataclasses.replace(settings, metrics=False), clock=clock)
    ) as c:
        assert (await c.get("/metrics", headers=AUTH)).status_code == 404
        assert (await c.get("/healthz")).status_code == 200


async def test_reports_are_counted_by_status_class(client):
    """count_report is what POST /v1/report's handler calls (issue #15 adds the route)."""
    from rotator.metrics.fold import count_report

    state = client.app.state.rotator
    before = await scrape(client)
    for status in (200, 201, 429, 429, 401, 503, 99):
        count_report(state.metrics, status)
    after = await scrape(client)
    got = {
        c: delta(before, after, "rotator_reports_total", status_class=c)
        for c in ("2xx", "429", "4xx", "5xx", "other")
    }
    assert got == {"2xx": 2, "429": 2, "4xx": 1, "5xx": 1, "other": 1}


async def test_reports_over_http_are_counted(client, redis, settings):
    """POST /v1/report's handler counts each accepted report by the status reported."""
    t = await seed.tenant(redis)
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "openai", policy="usage", max_daily=100)
    await seed.key(redis, settings.keyring, t, "openai", SECRET, label="Primary")
    before = await scrape(client)
    auth = {"Authorization": f"Bearer {minted.token}"}
    for status in (200, 429):
        r = await client.post(
            "/v1/report",
            json={"service": "openai", "key_id": t.key_ids[0], "status": status},
            headers=auth,
        )
        assert r.status_code == 202, r.text
    after = await scrape(client)
    assert delta(before, after, "rotator_reports_total", status_class="2xx") == 1
    assert delta(before, after, "rotator_reports_total", status_class="429") == 1


@pytest.mark.backends("single")
async def test_a_down_store_is_counted(settings, clock):
    """Every 503 store unavailable is a store error, a delivery's also its outcome."""
    import dataclasses

    from rotator.api.app import create_app
    from rotator.embedded import free_port
    from tests.asgi import app_client

    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}")
    token = tokens.mint_client(tokens.new_tenant_id()).token
    async with app_client(create_app(down, clock=clock)) as client:
        before = await scrape(client)
        r = await client.get("/v1/next", params={"service": "openai", "token": token})
        assert r.status_code == 503
        assert (await client.get("/v1/admin/tenants", headers=AUTH)).status_code == 503
        after = await scrape(client)
    assert delta(before, after, "rotator_deliveries_total", outcome="store unavailable") == 1
    assert delta(before, after, "rotator_store_errors_total") == 2
    requests = "rotator_management_requests_total"
    assert (
        delta(before, after, requests, route="/v1/admin/tenants", method="GET", status="503") == 1
    )


async def test_per_tenant_deliveries_only_when_asked(settings, redis, clock):
    import dataclasses

    from rotator.api.app import create_app
    from tests.asgi import app_client

    token = await seeded(redis, settings, max_daily=100)
    tenant = token.split("_")[1]
    wrong = tokens.mint_client(tenant).token
    invented = tokens.mint_client(tokens.new_tenant_id()).token
    per_tenant = dataclasses.replace(settings, metrics_per_tenant=True)
    async with app_client(create_app(per_tenant, clock=clock)) as client:
        before = await scrape(client)
        for params in (
            {"service": "openai", "token": token},
            {"service": "openai", "token": token},
            {"service": "nope", "token": token},
            {"service": "openai", "token": wrong},  # not verified: not counted per tenant
            {"service": "openai", "token": invented},
        ):
            await client.get("/v1/next", params=params)
        after = await scrape(client)
    series = "rotator_tenant_deliveries_total"
    assert delta(before, after, series, tenant=tenant, outcome="ok") == 2
    assert delta(before, after, series, tenant=tenant, outcome="unknown service") == 1
    assert delta(before, after, series, tenant=tenant, outcome="invalid token") == 0
    assert not any(
        name == series and dict(labels)["tenant"] == invented.split("_")[1]
        for name, labels in after
    )
