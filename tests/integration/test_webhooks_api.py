"""GET /v1/webhooks/deliveries, and the whole path: a real /v1/next -> signed webhook -> log."""

from __future__ import annotations

import json

import pytest

from rotator.store import keys, webhooks
from rotator.store.webhooks import DeliveryAttempt
from rotator.tuning import WEBHOOK_LOG_KEEP
from tests.integration.management import deliver, new_key, new_service, new_tenant
from tests.integration.webhook_support import deliver_all, verify_signature


def attempt(n: int, outcome: str = "delivered") -> DeliveryAttempt:
    return DeliveryAttempt(
        event_id=f"evt_x_{n}-0", type="key.rotated", attempts=1,
        status_code=200 if outcome == "delivered" else 500,
        error=None if outcome == "delivered" else "HTTP 500",
        outcome=outcome, updated_at="2026-03-01T12:00:00.000Z",  # type: ignore[arg-type]
    )  # fmt: skip


async def test_from_next_to_a_verified_webhook_and_the_log(client, redis, settings, receiver):
    t = await new_tenant(client)
    r = await client.patch(
        "/v1/tenant",
        json={"webhook_url": receiver.url, "webhook_events": ["key.delivered"]},
        headers=t.auth,
    )
    secret = r.json()["webhook_secret"]  # shown once, when generated
    await new_service(client, t)
    key = await new_key(client, t)
    for _ in range(3):
        assert (await deliver(client, t.client_token)).status_code == 200

    assert await deliver_all(settings, redis) == 3

    bodies = []
    for request in receiver.received:
        assert verify_signature(secret, request.headers, request.body)
        bodies.append(json.loads(request.body))
    assert sorted(b["data"]["usage_today"] for b in bodies) == [1, 2, 3]
    assert {(b["type"], b["tenant"], b["data"]["key_id"]) for b in bodies} == {
        ("key.delivered", t.id, key["id"])
    }

    r = await client.get("/v1/webhooks/deliveries", headers=t.auth)
    assert r.status_code == 200
    page = r.json()
    assert page["next_cursor"] is None
    assert sorted(d["event_id"] for d in page["deliveries"]) == sorted(b["id"] for b in bodies)
    assert {
        (d["outcome"], d["status_code"], d["attempts"], d["type"]) for d in page["deliveries"]
    } == {("delivered", 200, 1, "key.delivered")}
    assert secret not in r.text


async def test_pages_are_stable_while_attempts_are_logged(client, redis):
    t = await new_tenant(client)
    for n in range(1, 8):
        await webhooks.log_attempt(redis, t.id, attempt(n))

    first = (await client.get("/v1/webhooks/deliveries?limit=3", headers=t.auth)).json()
    # two more attempts arrive between the pages: the cursor still continues where page 1 ended
    await webhooks.log_attempt(redis, t.id, attempt(8))
    await webhooks.log_attempt(redis, t.id, attempt(9, "retrying"))
    second = (
        await client.get(
            "/v1/webhooks/deliveries",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers=t.auth,
        )
    ).json()
    third = (
        await client.get(
            "/v1/webhooks/deliveries",
            params={"limit": 3, "cursor": second["next_cursor"]},
            headers=t.auth,
        )
    ).json()

    def ids(page):
        return [d["event_id"] for d in page["deliveries"]]

    assert ids(first) == ["evt_x_7-0", "evt_x_6-0", "evt_x_5-0"]
    assert ids(second) == ["evt_x_4-0", "evt_x_3-0", "evt_x_2-0"]
    assert ids(third) == ["evt_x_1-0"]
    assert third["next_cursor"] is None
    newest = (await client.get("/v1/webhooks/deliveries?limit=2", headers=t.auth)).json()
    assert ids(newest) == ["evt_x_9-0", "evt_x_8-0"]
    assert newest["deliveries"][0]["outcome"] == "retrying"
    assert newest["deliveries"][0]["error"] == "HTTP 500"


async def test_log_is_capped_and_paging_ends_at_its_tail(redis):
    await redis.hset(keys.tenant("capped"), "name", "capped")  # a tenant's log only
    for n in range(WEBHOOK_LOG_KEEP + 5):
        await webhooks.log_attempt(redis, "capped", attempt(n))
    assert await redis.llen("{t:capped}:deliveries") == WEBHOOK_LOG_KEEP
    seen, cursor = [], None
    while True:
        page, cursor = await webhooks.page(redis, "capped", limit=300, cursor=cursor)
        seen += page
        if cursor is None:
            break
    assert len(seen) == WEBHOOK_LOG_KEEP
    assert seen[0].event_id == f"evt_x_{WEBHOOK_LOG_KEEP + 4}-0"
    assert seen[-1].event_id == "evt_x_5-0"


async def test_tenant_admin_only_and_own_log_only(client, redis):
    owner = await new_tenant(client)
    other = await new_tenant(client, name="other")
    await webhooks.log_attempt(redis, owner.id, attempt(1))

    for headers in (
        {},
        {"Authorization": f"Bearer {owner.client_token}"},
        {"Authorization": "Bearer kta_nosuchtenant_xyz"},
    ):
        r = await client.get("/v1/webhooks/deliveries", headers=headers)
        assert r.status_code == 401
    r = await client.get("/v1/webhooks/deliveries", headers=other.auth)
    assert r.json() == {"deliveries": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=0", "cursor"),
    ],
)
async def test_bad_paging_parameters(client, query, field):
    t = await new_tenant(client)
    r = await client.get(f"/v1/webhooks/deliveries?{query}", headers=t.auth)
    assert r.status_code == 400
    assert r.json()["field"] == field
