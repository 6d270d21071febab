"""Who may report on a key (POST /v1/report takes /v1/next's tokens, with its rules), what a bad
report is told, and reports racing deliveries on one key."""

from __future__ import annotations

import asyncio

import pytest

from rotator.domain.clock import FakeClock
from tests.integration.management import deliver, new_app, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

BODY = {"service": "openai", "status": 200}


async def setup(client):
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    return t, key["id"]


async def test_client_and_app_tokens_in_the_query_or_as_bearer(client):
    t, key_id = await setup(client)
    app = await new_app(client, t)
    body = {**BODY, "key_id": key_id}
    for params, headers in [
        ({"token": t.client_token}, {}),
        ({"app_token": app["app_token"]}, {}),
        ({}, {"Authorization": f"Bearer {t.client_token}"}),
        ({}, {"Authorization": f"bearer {app['app_token']}"}),
    ]:
        r = await client.post("/v1/report", json=body, params=params, headers=headers)
        assert (r.status_code, r.json()) == (202, {"state": "active"}), (params, headers)


async def test_tokens_that_may_not_fetch_are_refused(client):
    t, key_id = await setup(client)
    other = await new_tenant(client, name="other")
    app = await new_app(client, t)
    body = {**BODY, "key_id": key_id}

    async def status(token: str | None, **extra) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await client.post("/v1/report", json={**body, **extra}, headers=headers)
        return r.status_code, r.json()["error"]

    assert await status(None) == (400, "missing token or service")
    assert await status(t.admin_token) == (403, "invalid token")
    assert await status("krc_nonsense") == (403, "invalid token")
    assert await status(t.client_token[:-2] + "xx") == (403, "invalid token")
    # another tenant's token: that tenant has no such service
    assert await status(other.client_token) == (404, "unknown service")
    assert await status(t.client_token, service="anthropic") == (404, "unknown service")
    assert await status(t.client_token, key_id=key_id + 100) == (404, "unknown key")
    # a key of another service of the tenant is not a key of this one
    await new_service(client, t, slug="anthropic")
    other_key = (await new_key(client, t, slug="anthropic"))["id"]
    assert await status(t.client_token, key_id=other_key) == (404, "unknown key")

    await client.patch(f"/v1/apps/{app['id']}", json={"suspended": True}, headers=t.auth)
    assert await status(app["app_token"]) == (403, "invalid token")
    await client.patch(f"/v1/apps/{app['id']}", json={"suspended": False}, headers=t.auth)
    await client.patch(
        f"/v1/apps/{app['id']}", json={"ip_allowlist": ["10.0.0.0/8"]}, headers=t.auth
    )
    assert await status(app["app_token"]) == (403, "ip not allowed")
    await client.patch("/v1/tenant", json={"ip_allowlist": ["10.0.0.0/8"]}, headers=t.auth)
    assert await status(t.client_token) == (403, "ip not allowed")


async def test_a_suspended_tenant_cannot_report(client):
    t, key_id = await setup(client)
    r = await client.patch(
        f"/v1/admin/tenants/{t.id}",
        json={"suspended": True},
        headers={"Authorization": "Bearer operator-test-token-0123456789abcdef"},
    )
    assert r.status_code == 200
    r = await client.post(
        "/v1/report", json={**BODY, "key_id": key_id}, params={"token": t.client_token}
    )
    assert (r.status_code, r.json()) == (403, {"error": "invalid token"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key_id": 1}, "status"),
        ({"status": 200}, "key_id"),
        ({"key_id": "one", "status": 200}, "key_id"),
        ({"key_id": 0, "status": 200}, "key_id"),
        ({"key_id": 1, "status": 99}, "status"),
        ({"key_id": 1, "status": 600}, "status"),
        ({"key_id": 1, "status": 429, "retry_after": -1}, "retry_after"),
        ({"key_id": 1, "status": 429, "error": "x" * 101}, "error"),
        ({"key_id": 1, "status": 429, "error": "no spaces"}, "error"),
        ({"key_id": 1, "status": 200, "extra": 1}, "extra"),
    ],
)
async def test_a_bad_body_is_a_400_naming_the_field(client, body, field):
    t, _ = await setup(client)
    r = await client.post(
        "/v1/report", json={"service": "openai", **body}, params={"token": t.client_token}
    )
    assert (r.status_code, r.json().get("field")) == (400, field), r.text


async def test_no_delivery_after_a_429_is_acknowledged_hands_out_the_key(client, clock: FakeClock):
    """32 clients report 429 on one key while 32 others fetch: every delivery that starts
    after the first report was acknowledged gets the other key, until the cooldown ends."""
    t = await new_tenant(client)
    await new_service(client, t)
    hot = (await new_key(client, t, label="hot"))["id"]
    cold = (await new_key(client, t, label="cold"))["id"]
    acknowledged = asyncio.Event()
    after: list[int] = []

    async def reporter() -> None:
        r = await client.post(
            "/v1/report",
            json={"service": "openai", "key_id": hot, "status": 429, "retry_after": 30},
            params={"token": t.client_token},
        )
        assert (r.status_code, r.json()["state"]) == (202, "cooling_down")
        acknowledged.set()

    async def fetcher() -> None:
        for _ in range(4):
            started_after = acknowledged.is_set()
            r = await deliver(client, t.client_token)
            assert r.status_code == 200
            if started_after:
                after.append(r.json()["meta"]["key_id"])
            await asyncio.sleep(0)

    await asyncio.gather(*(reporter() for _ in range(32)), *(fetcher() for _ in range(32)))
    for _ in range(20):
        after.append((await deliver(client, t.client_token)).json()["meta"]["key_id"])
    assert after and set(after) == {cold}
    clock.now_ms += 30_000 - 1
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == cold
    clock.now_ms += 1
    # recovered: the usage policy picks it (used less today) again
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == hot
