"""/v1/services/{slug}/keys over HTTP: bulk add, moving a key, what a listing says about the
rotation (state, expiry, the current key, when a time service runs out) and the events a
change of the current key records."""

from __future__ import annotations

import json

import pytest

from rotator.domain.clock import FakeClock
from rotator.domain.models import EVENT_TYPES
from rotator.store import keys
from tests.integration.management import deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

SECRETS = [f"sk-proj-bulk-{i}-abcdefghijklmnopqrstuv" for i in range(3)]


async def subscribe(client, t) -> None:
    body = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": list(EVENT_TYPES)}
    assert (await client.patch("/v1/tenant", json=body, headers=t.auth)).status_code == 200


async def recorded(redis, t, kind: str) -> list[dict]:
    return [
        json.loads(f[b"data"])
        for _, f in await redis.xrange(keys.events(t.id))
        if f[b"type"].decode() == kind
    ]


async def listed(client, t, slug="openai") -> list[dict]:
    r = await client.get(f"/v1/services/{slug}/keys", headers=t.auth)
    assert r.status_code == 200
    return r.json()


async def test_bulk_add_appends_in_order_all_or_nothing(client, redis):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    body = {
        "keys": [
            {"secret": SECRETS[0]},
            {"secret": SECRETS[1], "label": "Backup", "max_daily_requests": 500},
            {"secret": SECRETS[2], "label": None},
        ]
    }
    r = await client.post("/v1/services/openai/keys/bulk", json=body, headers=t.auth)
    assert r.status_code == 201, r.text
    added = r.json()["keys"]
    ids = [k["id"] for k in added]
    assert [k["label"] for k in added] == [f"Key {ids[0]}", "Backup", f"Key {ids[2]}"]
    assert [k["max_daily_requests"] for k in added] == [None, 500, None]
    assert [k["current"] for k in added] == [True, False, False]  # the first key is current
    assert not any(s in r.text for s in SECRETS)
    assert [k["id"] for k in await listed(client, t)] == ids
    assert (await deliver(client, t.client_token)).json()["key"] == SECRETS[0]

    # one bad entry refuses them all, naming it; nothing is written
    bad = {"keys": [{"secret": "sk-good-0123456789"}, {"secret": "sk-\nbad"}]}
    r = await client.post("/v1/services/openai/keys/bulk", json=bad, headers=t.auth)
    assert r.status_code == 400
    assert r.json() == {
        "error": "keys[1].secret: must not contain control characters",
        "field": "secret",
        "index": 1,
    }
    assert "sk-good" not in r.text and "bad" not in r.json()["error"].split(":", 1)[1]
    assert [k["id"] for k in await listed(client, t)] == ids


@pytest.mark.parametrize(
    ("body", "field", "index"),
    [
        ({"keys": []}, "keys", None),
        ({"keys": [{"secret": "sk-x"}] * 1001}, "keys", None),
        ({"keys": [{"secret": "sk-x"}, {"secret": "   "}]}, "secret", 1),
        ({"keys": [{"secret": "sk-x", "label": ""}]}, "label", 0),
        ({"keys": [{"secret": "sk-x"}, {"secret": "sk-y", "max_daily_requests": 0}]},
         "max_daily_requests", 1),
        ({"keys": [{"secret": "sk-x", "active": False}]}, "active", 0),
        ({"keys": [{"secret": "sk-x"}, {"secret": 5}]}, "secret", 1),
        ({"keys": [{"secret": "sk-x"}, {}]}, "secret", 1),
        ({"keys": [{"secret": "sk-x"}, 3]}, "keys", 1),
        ({"keys": [{"secret": "sk-x"}, {"secret": "sk-y"}, {"secret": "sk-x"}]}, "secret", 2),
        ({"secret": "sk-x"}, "secret", None),
    ],
)  # fmt: skip
async def test_bulk_add_refusals_name_the_entry(client, redis, body, field, index):
    t = await new_tenant(client)
    await new_service(client, t)
    r = await client.post("/v1/services/openai/keys/bulk", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and r.json().get("index") == index
    assert "sk-" not in r.text
    assert await redis.hget(keys.service(t.id, "openai"), "ids") == b""


async def test_bulk_add_to_an_unknown_service_is_404(client):
    t = await new_tenant(client)
    body = {"keys": [{"secret": "sk-x-0123456789"}]}
    assert (
        await client.post("/v1/services/nope/keys/bulk", json=body, headers=t.auth)
    ).status_code == 404


async def test_move_changes_what_comes_next_not_the_current_key(client, redis):
    t = await new_tenant(client)
    await subscribe(client, t)
    await new_service(client, t, policy="manual")
    a, b, c = [
        (await new_key(client, t, secret=s, label=f"k{i}"))["id"] for i, s in enumerate(SECRETS)
    ]
    r = await client.post(
        f"/v1/services/openai/keys/{c}/move", json={"to": "front"}, headers=t.auth
    )
    assert r.status_code == 200
    assert [(k["id"], k["current"]) for k in r.json()] == [(c, False), (a, True), (b, False)]
    assert r.json() == await listed(client, t)
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == a
    r = await client.post(f"/v1/services/openai/keys/{a}/move", json={"to": "end"}, headers=t.auth)
    assert [k["id"] for k in r.json()] == [c, b, a]
    rotated = (await client.post("/v1/services/openai/rotate", headers=t.auth)).json()
    assert (rotated["from_key_id"], rotated["to_key_id"]) == (a, c)  # wraps to the new front
    assert await recorded(redis, t, "key.rotated") == [
        {"service": "openai", "from_key_id": a, "to_key_id": c, "reason": "manual"}
    ]
    for body, status in (({"to": "middle"}, 400), ({}, 400), ({"to": "end", "x": 1}, 400)):
        r = await client.post(f"/v1/services/openai/keys/{a}/move", json=body, headers=t.auth)
        assert r.status_code == status, body
    r = await client.post("/v1/services/openai/keys/999/move", json={"to": "end"}, headers=t.auth)
    assert r.status_code == 404


async def test_time_policy_semantics_are_visible(client, redis, clock: FakeClock):
    t = await new_tenant(client)
    await subscribe(client, t)
    await new_service(client, t, policy="time", key_ttl_minutes=10)
    a, b = [(await new_key(client, t, secret=s))["id"] for s in SECRETS[:2]]
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    # N keys of T minutes cover N x T minutes, from their first delivery on
    assert (service["active_keys"], service["keys_run_out_at"]) == (2, "2026-03-01T12:20:00.000Z")
    first = await listed(client, t)
    assert [(k["state"], k["current"], k["expires_at"]) for k in first] == [
        ("active", True, None), ("active", False, None)
    ]  # fmt: skip

    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == a
    assert (await listed(client, t))[0]["expires_at"] == "2026-03-01T12:10:00.000Z"
    clock.advance(minutes=10)
    now = await listed(client, t)
    assert [(k["state"], k["current"]) for k in now] == [("expired", False), ("active", True)]
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert service["active_keys"] == 1

    # re-enabling the expired key restarts its lifetime: it re-enters at its next delivery
    r = await client.patch(f"/v1/services/openai/keys/{a}", json={"active": True}, headers=t.auth)
    assert (r.json()["state"], r.json()["expires_at"]) == ("active", None)
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == b
    clock.advance(minutes=10)
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == a
    rotated = await recorded(redis, t, "key.rotated")
    assert [(d["from_key_id"], d["to_key_id"], d["reason"]) for d in rotated] == [
        (a, b, "expired"), (b, a, "expired")
    ]  # fmt: skip


@pytest.mark.parametrize("policy", ["manual", "time"])
async def test_disabling_or_deleting_the_current_key_moves_current_at_once(client, redis, policy):
    t = await new_tenant(client)
    await subscribe(client, t)
    extra = {"key_ttl_minutes": 60} if policy == "time" else {}
    await new_service(client, t, policy=policy, **extra)
    a, b, c = [(await new_key(client, t, secret=s))["id"] for s in SECRETS]
    r = await client.patch(f"/v1/services/openai/keys/{a}", json={"active": False}, headers=t.auth)
    assert (r.json()["current"], r.json()["state"]) == (False, "disabled")
    assert [k["id"] for k in await listed(client, t) if k["current"]] == [b]
    assert (await client.delete(f"/v1/services/openai/keys/{b}", headers=t.auth)).status_code == 204
    assert [k["id"] for k in await listed(client, t) if k["current"]] == [c]
    rotated = await recorded(redis, t, "key.rotated")
    assert [(d["from_key_id"], d["to_key_id"], d["reason"]) for d in rotated] == [
        (a, b, "disabled"), (b, c, "deleted")
    ]  # fmt: skip
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == c


async def test_policy_round_trip_keeps_the_manual_choice(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    _, b = [(await new_key(client, t, secret=s))["id"] for s in SECRETS[:2]]
    await client.post("/v1/services/openai/rotate", headers=t.auth)
    for body in (
        {"policy": "usage"},
        {"policy": "time", "key_ttl_minutes": 5},
        {"policy": "manual"},
    ):
        r = await client.patch("/v1/services/openai", json=body, headers=t.auth)
        assert r.status_code == 200, r.text
    assert [k["id"] for k in await listed(client, t) if k["current"]] == [b]
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == b


async def test_limit_warning_percent_is_set_changed_and_checked(client):
    t = await new_tenant(client)
    created = await new_service(client, t, max_daily_requests=100)
    assert created["limit_warning_percent"] == 80  # the default
    off = await new_service(client, t, slug="quiet", limit_warning_percent=None)
    assert off["limit_warning_percent"] is None
    for value, expected in ((50, 50), (0, None), (None, None), (99, 99)):
        r = await client.patch("/v1/services/openai", json={"limit_warning_percent": value},
                               headers=t.auth)  # fmt: skip
        assert (r.status_code, r.json()["limit_warning_percent"]) == (200, expected)
    for value in (100, -1, True):
        r = await client.patch("/v1/services/openai", json={"limit_warning_percent": value},
                               headers=t.auth)  # fmt: skip
        assert (r.status_code, r.json()["field"]) == (400, "limit_warning_percent"), value
