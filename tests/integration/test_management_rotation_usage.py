"""POST /v1/services/{slug}/rotate and GET /v1/services/{slug}/usage over HTTP."""

from __future__ import annotations

import pytest

from rotator.domain.clock import DAY_MS
from tests.integration.management import deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def test_rotate_advances_the_manual_primary(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    a = (await new_key(client, t, label="A", secret="sk-a-0000000000000000"))["id"]
    b = (await new_key(client, t, label="B", secret="sk-b-0000000000000000"))["id"]
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == a

    r = await client.post("/v1/services/openai/rotate", headers=t.auth)
    assert (r.status_code, r.json()) == (
        200,
        {"service": "openai", "from_key_id": a, "to_key_id": b},
    )
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == b
    r = await client.post("/v1/services/openai/rotate", headers=t.auth)
    assert r.json()["to_key_id"] == a


async def test_rotate_errors(client):
    t = await new_tenant(client)
    other = await new_tenant(client, "other")
    await new_service(client, t, "u", policy="usage")
    await new_service(client, t, "m", policy="manual")
    assert (await client.post("/v1/services/u/rotate", headers=t.auth)).status_code == 409
    r = await client.post("/v1/services/m/rotate", headers=t.auth)
    assert (r.status_code, r.json()) == (409, {"error": "no active keys"})
    assert (await client.post("/v1/services/nope/rotate", headers=t.auth)).status_code == 404
    assert (await client.post("/v1/services/m/rotate", headers=other.auth)).status_code == 404
    assert (await client.post("/v1/services/m/rotate")).status_code == 401


async def test_usage_per_key_per_day(client, clock):
    t = await new_tenant(client)
    await new_service(client, t, policy="usage")
    a = (await new_key(client, t, label="A", secret="sk-a-0000000000000000"))["id"]
    b = (await new_key(client, t, label="B", secret="sk-b-0000000000000000"))["id"]
    for _ in range(3):
        assert (await deliver(client, t.client_token)).status_code == 200
    clock.now_ms += DAY_MS
    assert (await deliver(client, t.client_token)).status_code == 200

    r = await client.get("/v1/services/openai/usage", params={"days": 3}, headers=t.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["service"] == "openai"
    today, yesterday, before = body["days"]
    assert today["total"] == 1 and yesterday["total"] == 3 and before["total"] == 0
    assert {k["key_id"]: k["deliveries"] for k in yesterday["keys"]} == {a: 2, b: 1}
    assert {k["label"] for k in today["keys"]} == {"A", "B"}
    assert today["date"] > yesterday["date"] > before["date"]


async def test_usage_bad_input_and_isolation(client):
    t = await new_tenant(client)
    other = await new_tenant(client, "other")
    await new_service(client, t)
    for days in ("0", "36", "400", "10000"):  # one range, in one set of words, whatever the value
        r = await client.get("/v1/services/openai/usage", params={"days": days}, headers=t.auth)
        assert (r.status_code, r.json()) == (
            400, {"error": "days: must be between 1 and 35", "field": "days"}
        ), days  # fmt: skip
    r = await client.get("/v1/services/openai/usage", params={"days": "x"}, headers=t.auth)
    assert r.status_code == 400 and r.json()["field"] == "days"
    assert (await client.get("/v1/services/nope/usage", headers=t.auth)).status_code == 404
    assert (await client.get("/v1/services/openai/usage", headers=other.auth)).status_code == 404
    assert (await client.get("/v1/services/openai/usage")).status_code == 401
