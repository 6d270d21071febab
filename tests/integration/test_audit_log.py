"""The audit log through the API: a record for every write (the list of writes is the OpenAPI
document's), refused attempts, no secret in any record, the request id, retention, pages,
filters, tenant isolation, and the audit.* events."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from rotator.api.app import create_app
from rotator.domain.clock import DAY_MS
from rotator.settings import Settings
from rotator.store import keys
from tests.asgi import app_client
from tests.conftest import OPERATOR_TOKEN
from tests.integration.audit_support import (
    ADDED_SECRET,
    BULK_SECRET,
    IMPORT_SECRET,
    NOT_RECORDED,
    WEBHOOK_SECRET,
    WRITES,
    do_write,
    raw_records,
    read_all,
    seeded,
)
from tests.integration.management import OPERATOR, SECRET, new_app, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

STORE_NAMES = {"keys": "new_keys"}
"""Request fields the store function names otherwise (the record uses the store's name)."""


def _write_operations(client_app: Any) -> set[str]:
    document = client_app.openapi_schema.to_schema()
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("post", "put", "patch", "delete")
        and path not in ("/v1/next", "/keyrotator/api/next.php")
    }


@pytest.mark.backends("single")
def test_every_write_of_the_api_is_in_the_table(settings):
    """A write added to the API must be added to WRITES, and so gets the record test."""
    operations = _write_operations(create_app(settings))
    assert operations - set(NOT_RECORDED) == set(WRITES)


@pytest.mark.parametrize("operation", sorted(WRITES))
async def test_every_write_appends_one_record(client, redis, operation):
    f = await seeded(client)
    before = len(await raw_records(redis, None))
    r = await do_write(client, f, operation)
    assert r.status_code < 300, r.text

    new = (await raw_records(redis, None))[before:]
    who, _, body, action = WRITES[operation]
    assert [n["action"] for n in new] == [action]
    record = new[0]
    assert record["outcome"] == "ok" and record["reason"] is None
    assert record["role"] == ("operator" if who == "operator" else "tenant_admin")
    assert record["via"] == "api" and record["address"] == "127.0.0.1"
    assert record["credential"].startswith("token:") and len(record["credential"]) == 14
    assert record["request_id"] == r.headers["x-request-id"]
    created = r.json().get("id") if r.content and isinstance(r.json(), dict) else None
    assert record["tenant"] in (f.tenant.id, created)
    for name, value in (body or {}).items():
        name = STORE_NAMES.get(name, name)
        assert name in record["fields"] or record["resource"] == value, name
    # and no operator setting the store is handed (webhook_allow_private): not the request's
    assert not set(record["fields"]) & {f.name for f in dataclasses.fields(Settings)}
    if operation != "DELETE /v1/admin/tenants/{tenant_id}":
        # the tenant's own log holds the same record (its log is gone with a deleted tenant)
        tenant = record["tenant"]
        assert (await raw_records(redis, tenant))[-1] == record


async def test_no_record_holds_a_secret_or_token(client, redis):
    """Every write, then every record of every log scanned for every secret and token."""
    f = await seeded(client)
    secrets = {
        SECRET,
        SECRET + "2",
        ADDED_SECRET,
        BULK_SECRET,
        IMPORT_SECRET,
        WEBHOOK_SECRET,
        OPERATOR_TOKEN,
        f.tenant.admin_token,
        f.tenant.client_token,
    }
    for operation in sorted(WRITES):
        if WRITES[operation][0] == "operator" and "DELETE" in operation:
            continue
        r = await do_write(client, f, operation)
        for value in r.json().values() if r.content and r.status_code < 300 else ():
            if isinstance(value, str) and value.startswith(("kta_", "krc_", "kra_", "whsec_")):
                secrets.add(value)
        if "admin_token" in (r.json() if r.content else {}):
            f.tenant.admin_token = r.json()["admin_token"]
    # refused attempts carry the request's fields too
    await client.post(
        "/v1/services/nope/keys", json={"label": "x", "secret": SECRET + "3"}, headers=f.tenant.auth
    )
    secrets.add(SECRET + "3")
    # tokens imported from the hosted service, kept and refused (another tenant holds one)
    other = await new_tenant(client, "other")
    held = "Other-Tenants-Hosted-Token-0123456789"
    r = await client.post(
        "/v1/tenant/client-token", json={"client_token": held}, headers=other.auth
    )
    assert r.status_code == 200, r.text
    app_id = (await new_app(client, f.tenant))["id"]  # the table's writes deleted the first
    for path, field, token, status in (
        ("/v1/tenant/client-token", "client_token", "Hosted-Client-Token-0123456789", 200),
        (f"/v1/apps/{app_id}/token", "app_token", "Hosted-App-Token-0123456789", 200),
        ("/v1/tenant/client-token", "client_token", held, 409),
        (f"/v1/apps/{app_id}/token", "app_token", held, 409),
        (f"/v1/apps/{app_id}/token", "app_token", other.client_token, 400),  # one of ours
    ):
        r = await client.post(path, json={field: token}, headers=f.tenant.auth)
        assert r.status_code == status, r.text
        secrets.update((token, held, other.client_token, other.admin_token))
    logs = [await raw_records(redis, None), await raw_records(redis, f.tenant.id)]
    text = json.dumps(logs)
    assert len(logs[0]) > len(WRITES)
    for secret in secrets:
        assert secret not in text
        assert secret[-24:] not in text  # nor its end (a token's secret part)
    assert "[redacted]" in text


async def test_a_refused_write_is_recorded_with_why(client, redis):
    f = await seeded(client)
    r = await client.patch(
        "/v1/services/openai/keys/999", json={"active": False}, headers=f.tenant.auth
    )
    assert r.status_code == 404
    r2 = await client.post(
        "/v1/services", json={"slug": "Bad Slug", "policy": "usage"}, headers=f.tenant.auth
    )
    assert r2.status_code == 400
    records = await read_all(client, f.tenant.auth)
    newest = records[:2]
    assert [(x["action"], x["outcome"]) for x in newest] == [
        ("create_service", "refused"),
        ("update_key", "refused"),
    ]
    assert newest[1]["resource"] == "openai/999" and newest[1]["reason"] == "key not found"
    assert newest[0]["reason"].startswith("slug")
    assert newest[0]["request_id"] == r2.headers["x-request-id"]
    # the script refused: nothing changed, and no "ok" record of it exists
    assert not [x for x in records if x["action"] == "update_key" and x["outcome"] == "ok"]


async def test_a_refusal_repeating_huge_input_is_recorded_cut_short(client):
    # a tenant admin must not fill the shared store, one refused request at a time
    f = await seeded(client)
    name = "x" * 1_000_000
    body = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": [name]}
    r = await client.patch("/v1/tenant", json=body, headers=f.tenant.auth)
    assert r.status_code == 400 and len(r.content) < 1_000
    assert r.json()["error"].startswith("webhook_events: unknown event 'xxxx")
    newest = (await read_all(client, f.tenant.auth))[0]
    assert newest["outcome"] == "refused" and newest["reason"].endswith("…")
    assert len(newest["reason"]) <= 201


async def test_a_suspended_tenants_write_is_recorded_refused(client):
    f = await seeded(client)
    r = await client.patch(
        f"/v1/admin/tenants/{f.tenant.id}", json={"suspended": True}, headers=OPERATOR
    )
    assert r.status_code == 200
    r = await client.delete("/v1/apps/1", headers=f.tenant.auth)
    assert r.status_code == 403
    newest = (await read_all(client, f.tenant.auth))[0]
    assert newest["outcome"] == "refused" and newest["reason"] == "tenant suspended"
    assert newest["action"] == "DELETE /v1/apps/1" and newest["role"] == "tenant_admin"


async def test_unauthenticated_attempts_are_counted_not_recorded(client, redis, clock):
    for _ in range(3):
        r = await client.post(
            "/v1/services",
            json={"slug": "x", "policy": "usage"},
            headers={"Authorization": "Bearer kta_nobody_nothing"},
        )
        assert r.status_code == 401
    r = await client.delete("/v1/admin/tenants/x?confirm=x", headers={"Authorization": "Bearer no"})
    assert r.status_code == 401
    assert await raw_records(redis, None) == []
    counts = await redis.hgetall(keys.auth_failures(clock() // 60_000))
    assert counts == {b"127.0.0.1": b"4"}


async def test_pages_follow_the_cursor_newest_first_without_gaps(client):
    t = await new_tenant(client)
    for i in range(7):
        await new_service(client, t, slug=f"s{i}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/audit", params=params, headers=t.auth)).json()
        seen += [x["resource"] for x in page["records"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"s{i}" for i in reversed(range(7))] + [t.id]
    assert pages == 3


async def test_filters_action_and_time(client, clock):
    t = await new_tenant(client)
    await new_service(client, t, slug="early")
    clock.advance(ms=60_000)
    await new_service(client, t, slug="late")
    r = await client.get("/v1/audit", params={"action": "create_service"}, headers=t.auth)
    assert [x["resource"] for x in r.json()["records"]] == ["late", "early"]
    since = "2026-03-01T12:00:30Z"
    r = await client.get("/v1/audit", params={"since": since}, headers=t.auth)
    assert [x["resource"] for x in r.json()["records"]] == ["late"]
    r = await client.get("/v1/audit", params={"until": since}, headers=t.auth)
    assert [x["resource"] for x in r.json()["records"]] == ["early", t.id]


async def test_a_tenant_sees_only_its_own_records(client):
    a = await new_tenant(client, "a")
    b = await new_tenant(client, "b")
    await new_service(client, a, slug="mine")
    await new_service(client, b, slug="theirs")
    seen = await read_all(client, a.auth)
    assert {x["tenant"] for x in seen} == {a.id}
    assert "theirs" not in json.dumps(seen)
    r = await client.get("/v1/audit", params={"tenant": b.id}, headers=a.auth)
    assert r.status_code == 400 and r.json()["field"] == "tenant"
    # the operator sees both, and narrows to one
    everyone = await read_all(client, OPERATOR)
    assert {x["tenant"] for x in everyone} == {a.id, b.id}
    only_b = await read_all(client, OPERATOR, tenant=b.id)
    assert {x["resource"] for x in only_b} == {b.id, "theirs"}


async def test_records_older_than_the_retention_are_trimmed(settings, redis, clock):
    settings = dataclasses.replace(settings, audit_retention_days=1)
    async with app_client(create_app(settings, clock=clock)) as client:
        t = await new_tenant(client)
        await new_service(client, t, slug="old")
        clock.advance(ms=DAY_MS + 1000)
        await new_service(client, t, slug="new")
        records = await read_all(client, t.auth)
        assert [x["resource"] for x in records] == ["new"]
        assert [x["resource"] for x in await read_all(client, OPERATOR)] == ["new"]


async def test_a_subscribed_tenant_gets_audit_events(client, redis):
    t = await new_tenant(client)
    r = await client.patch(
        "/v1/tenant",
        json={
            "webhook_url": "http://127.0.0.1:9/hook",
            "webhook_events": ["audit.write", "audit.refused"],
        },
        headers=t.auth,
    )
    assert r.status_code == 200, r.text
    await new_service(client, t, slug="watched")
    await client.delete("/v1/services/missing", headers=t.auth)
    events = [
        (v[b"type"].decode(), json.loads(v[b"data"]))
        for _, v in await redis.xrange(keys.events(t.id))
    ]
    assert [(kind, data["action"]) for kind, data in events] == [
        ("audit.write", "update_tenant"),  # the subscription holds from its own write on
        ("audit.write", "create_service"),
        ("audit.refused", "delete_service"),
    ]
    assert events[1][1]["resource"] == "watched"


async def test_audit_events_are_opt_in(client, redis):
    t = await new_tenant(client)
    r = await client.patch(
        "/v1/tenant", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=t.auth
    )
    assert "audit.write" not in r.json()["webhook_events"]
    await new_service(client, t, slug="quiet")
    assert await redis.xlen(keys.events(t.id)) == 0


async def test_bad_cursor_limit_and_times_are_400(client):
    t = await new_tenant(client)
    for params, field in (
        ({"cursor": "nope"}, "cursor"),
        ({"cursor": "18446744073709551616-0"}, "cursor"),  # 2^64: no stream id is that large
        ({"cursor": "1-99999999999999999999"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "99999999999999999999"}, "until"),  # out of any datetime's range
    ):
        r = await client.get("/v1/audit", params=params, headers=t.auth)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
        assert r.json()["error"] == r.json()["error"].strip(), r.text


SPANNING = {"POST /v1/admin/tenants", "DELETE /v1/admin/tenants/{tenant_id}"}
"""Writes that span cluster slots: recorded right after the change (docs/operations.md)."""


@pytest.mark.parametrize("operation", sorted(set(WRITES) - SPANNING))
async def test_a_tenants_write_carries_its_record_in_its_own_script(
    client, redis, monkeypatch, operation
):
    """Every step after the write's script is made to fail: the record is in the tenant's
    log all the same, so it was written by the script that made the change."""
    f = await seeded(client)

    async def lost(*args, **kwargs):
        raise RuntimeError("the copy to the operator's log is lost")

    monkeypatch.setattr("rotator.store.audit._append", lost)
    before = len(await raw_records(redis, f.tenant.id))
    r = await do_write(client, f, operation)
    assert r.status_code == 500  # the test's failure, after the change
    new = (await raw_records(redis, f.tenant.id))[before:]
    assert [(x["action"], x["outcome"]) for x in new] == [(WRITES[operation][3], "ok")]


async def test_the_smallest_cursor_is_an_empty_last_page(client):
    t = await new_tenant(client)
    await new_service(client, t)
    r = await client.get("/v1/audit", params={"cursor": "0-0"}, headers=t.auth)
    assert (r.status_code, r.json()) == (200, {"records": [], "next_cursor": None})
    largest = f"{2**64 - 1}-{2**64 - 1}"  # everything is before it
    r = await client.get("/v1/audit", params={"cursor": largest}, headers=t.auth)
    assert r.status_code == 200 and [x["action"] for x in r.json()["records"]][:1] == [
        "create_service"
    ]


async def test_times_before_1970_select_nothing_or_everything(client):
    t = await new_tenant(client)
    old = "1900-01-01T00:00:00Z"
    r = await client.get("/v1/audit", params={"until": old}, headers=t.auth)
    assert r.status_code == 200 and r.json() == {"records": [], "next_cursor": None}
    r = await client.get("/v1/audit", params={"since": old}, headers=t.auth)
    assert [x["action"] for x in r.json()["records"]] == ["create_tenant"]


async def test_a_lost_copy_never_turns_a_done_write_into_an_error(
    client, redis, monkeypatch, caplog
):
    """The store failing after the write: the write's answer stands (a retry would repeat
    it), the tenant's log has the record its script wrote, the loss is logged."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    t = await new_tenant(client)

    class Unreachable:
        def __init__(self, redis):
            pass

        async def run_many(self, calls):
            raise RedisConnectionError("gone")

    monkeypatch.setattr("rotator.store.audit.Plain", Unreachable)
    r = await client.post("/v1/services", json={"slug": "kept", "policy": "usage"}, headers=t.auth)
    assert r.status_code == 201
    assert (await raw_records(redis, t.id))[-1]["resource"] == "kept"
    lost = [x for x in caplog.records if x.name == "rotator.audit"]
    assert lost and "kept" in lost[0].getMessage() and lost[0].levelname == "ERROR"
    r = await client.delete("/v1/services/none", headers=t.auth)
    assert r.status_code == 404  # the refusal's own answer, not the copy's failure


@pytest.mark.backends("single")  # the worker's queue: the pump tests run it on a cluster
async def test_audit_events_reach_the_webhook_signed(client, settings, redis, receiver):
    from tests.integration.webhook_support import deliver_all, verify_signature

    t = await new_tenant(client)
    r = await client.patch(
        "/v1/tenant",
        json={"webhook_url": receiver.url, "webhook_events": ["audit.write", "audit.refused"]},
        headers=t.auth,
    )
    assert r.status_code == 200, r.text
    secret = r.json()["webhook_secret"]
    await new_service(client, t, slug="hooked")
    await client.delete("/v1/services/absent", headers=t.auth)
    assert await deliver_all(settings, redis) == 3
    bodies = [json.loads(x.body) for x in receiver.received]
    assert all(verify_signature(secret, x.headers, x.body) for x in receiver.received)
    assert sorted((b["type"], b["data"]["action"]) for b in bodies) == [
        ("audit.refused", "delete_service"),
        ("audit.write", "create_service"),
        ("audit.write", "update_tenant"),
    ]
    for body in bodies:
        assert body["tenant"] == t.id and body["data"]["tenant"] == t.id
        assert "whsec_" not in json.dumps(body)
