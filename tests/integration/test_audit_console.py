"""The console's writes are audited by session fingerprint, and its Activity pages show the
audit log: a tenant its own, the operator everyone's."""

from __future__ import annotations

import hashlib
import html
import re

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.integration.audit_support import raw_records
from tests.integration.console_support import post_form, sign_in
from tests.integration.management import OPERATOR, SECRET, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


def session_fp(client, cookie: str) -> str:
    value = client.cookies.get(cookie)
    secret = value.split(".", 1)[1] if cookie == "kr_session" else value
    return "session:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


async def test_a_tenants_console_writes_are_recorded_and_shown(client, redis):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/new-service", {"slug": "openai", "policy": "usage"})
    assert r.status_code == 303, r.text
    r = await post_form(client, "/app/services/openai/keys", {"label": "Main", "secret": SECRET})
    assert r.status_code == 303, r.text
    r = await post_form(client, "/app/services/nope/delete", {})
    assert r.status_code == 404

    records = await raw_records(redis, t.id)
    assert [(x["action"], x["outcome"]) for x in records[1:]] == [
        ("create_service", "ok"),
        ("add_key", "ok"),
        ("delete_service", "refused"),
    ]
    for x in records[1:]:
        assert (x["role"], x["via"], x["address"]) == ("tenant_admin", "console", "127.0.0.1")
        assert x["credential"] == session_fp(client, "kr_session")

    page = await client.get("/app/activity")
    assert page.status_code == 200 and page.headers["x-request-id"]
    text = html.unescape(page.text)
    assert "add_key" in text and "create_service" in text and "service not found" in text
    assert '"[redacted]"' in text and SECRET not in text and t.admin_token not in text
    assert 'aria-current="page">Activity' in page.text
    filtered = html.unescape((await client.get("/app/activity?action=add_key")).text)
    assert "add_key" in filtered and "create_service</code>" not in filtered
    bad = await client.get("/app/activity?cursor=nope")
    assert bad.status_code == 200 and "not a cursor" in bad.text


async def test_the_activity_page_pages_to_older_records(client):
    t = await new_tenant(client)
    for i in range(52):
        await new_service(client, t, slug=f"s{i}")
    await sign_in(client, t.admin_token)
    first = await client.get("/app/activity")
    older = re.search(r'href="(/app/activity\?cursor=[^"]+)"', first.text)
    assert older, "no link to older records"
    second = await client.get(html.unescape(older.group(1)))
    assert ">s1<" in second.text and ">s0<" in second.text and t.id in second.text
    assert "Older records" not in second.text


async def test_a_tenant_never_sees_another_tenants_activity(client):
    mine, theirs = await new_tenant(client, "mine"), await new_tenant(client, "theirs")
    await new_service(client, theirs, slug="hidden-svc")
    await sign_in(client, mine.admin_token)
    page = await client.get("/app/activity")
    assert "hidden-svc" not in page.text and theirs.id not in page.text
    page = await client.get(f"/app/activity?tenant={theirs.id}")  # not a filter it has
    assert "hidden-svc" not in page.text


async def test_the_operators_console_writes_and_activity(client, redis):
    t = await new_tenant(client, "acme")
    await new_service(client, t, slug="acme-svc")
    r = await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    assert r.status_code == 303
    r = await post_form(client, f"/app/operator/tenants/{t.id}/rename", {"name": "Acme 2"})
    assert r.status_code == 303, r.text
    newest = (await raw_records(redis, t.id))[-1]
    assert (newest["action"], newest["role"], newest["via"]) == (
        "update_tenant_status",
        "operator",
        "console",
    )
    assert newest["credential"] == session_fp(client, "kr_operator")
    assert newest["fields"] == {"name": "Acme 2"}

    page = await client.get("/app/operator/activity")
    assert page.status_code == 200
    assert "acme-svc" in page.text and "update_tenant_status" in page.text
    narrowed = await client.get(f"/app/operator/activity?tenant={t.id}&action=create_service")
    assert "acme-svc" in narrowed.text and "update_tenant_status" not in narrowed.text
    # the API's view of the same records
    api = await client.get("/v1/audit", params={"tenant": t.id}, headers=OPERATOR)
    assert {x["action"] for x in api.json()["records"]} == {
        "create_tenant",
        "create_service",
        "update_tenant_status",
    }


async def test_a_suspended_tenants_console_write_is_recorded_refused(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await client.patch(f"/v1/admin/tenants/{t.id}", json={"suspended": True}, headers=OPERATOR)
    assert r.status_code == 200
    r = await post_form(client, "/app/new-service", {"slug": "late", "policy": "usage"})
    assert r.status_code == 403
    newest = (await client.get("/v1/audit", params={"tenant": t.id}, headers=OPERATOR)).json()
    record = newest["records"][0]
    assert (record["action"], record["outcome"], record["via"]) == (
        "POST /app/new-service",
        "refused",
        "console",
    )
    assert record["reason"] == "tenant suspended"


async def test_an_attempt_on_an_unknown_tenant_leaves_no_key_behind(client, redis):
    r = await client.patch(
        "/v1/admin/tenants/0123456789abcdef", json={"name": "x"}, headers=OPERATOR
    )
    assert r.status_code == 404
    assert [k async for k in redis.scan_iter(match="{t:0123456789abcdef}*")] == []
    record = (await raw_records(redis, None))[-1]
    assert (record["tenant"], record["outcome"]) == ("0123456789abcdef", "refused")
