"""X-Request-ID on every answer but the delivery paths' (which set their own), the trusted
proxy's id honoured, and the same id in the log lines and the audit record it caused."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import logging

import pytest

from rotator import logs
from rotator.api.app import create_app
from tests.asgi import app_client
from tests.integration.management import OPERATOR, SECRET, new_key, new_service, new_tenant

PROXY_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.backends("single")
async def test_every_kind_of_answer_carries_a_request_id(client):
    t = await new_tenant(client)
    answers = [
        await client.get("/healthz"),
        await client.get("/v1/tenant", headers=t.auth),  # 200
        await client.get("/v1/tenant"),  # 401
        await client.get("/v1/services/none", headers=t.auth),  # 404
        await client.post("/v1/services", json={"slug": 1}, headers=t.auth),  # 400
        await client.get("/v1/audit", headers=OPERATOR),
        await client.get("/app/signin"),  # a console page
        await client.get("/app/services"),  # a console redirect to sign-in
        await client.get("/schema/openapi.json"),
        # answered by Litestar's routing, before any route's middleware
        await client.get("/no/such/path"),  # 404
        await client.delete("/v1/services"),  # 405
        await client.post("/v1/next"),  # 405 on a delivery path
        await client.get("/app/settings/client-token"),  # a console form's address: 303
    ]
    ids = [r.headers.get("x-request-id") for r in answers]
    assert all(ids), list(zip([r.request.url.path for r in answers], ids, strict=True))
    assert len(set(ids)) == len(ids)
    assert all(len(r.headers.get_list("x-request-id")) == 1 for r in answers)


@pytest.mark.backends("single")
async def test_the_delivery_paths_are_left_to_their_handler(client):
    """/v1/next sets its own id (#14): this layer adds none, so there is never two."""
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t, secret=SECRET)
    for path in ("/v1/next", "/keyrotator/api/next.php"):
        r = await client.get(
            path,
            params={"service": "openai", "token": t.client_token},
            headers={"X-Request-ID": PROXY_ID},
        )
        assert r.status_code == 200
        assert len(r.headers.get_list("x-request-id")) <= 1


@pytest.mark.backends("single")
async def test_a_trusted_proxys_id_is_kept_anyone_elses_replaced(settings, clock):
    async with app_client(create_app(settings, clock=clock)) as untrusted:
        r = await untrusted.get("/healthz", headers={"X-Request-ID": PROXY_ID})
        assert r.headers["x-request-id"] != PROXY_ID
    proxied = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with app_client(create_app(proxied, clock=clock)) as behind_proxy:
        r = await behind_proxy.get("/healthz", headers={"X-Request-ID": PROXY_ID})
        assert r.headers["x-request-id"] == PROXY_ID
        for bad in ("short", "has spaces in it", "x" * 129, "semi;colon;id"):
            r = await behind_proxy.get("/healthz", headers={"X-Request-ID": bad})
            assert r.headers["x-request-id"] != bad
        # the proxy's id and the client it names reach the audit record
        t = await new_tenant(behind_proxy)
        r = await behind_proxy.post(
            "/v1/services",
            json={"slug": "viaproxy", "policy": "usage"},
            headers={
                **t.auth,
                "X-Request-ID": "proxy-req-000001",
                "X-Forwarded-For": "198.51.100.7",
            },
        )
        assert r.status_code == 201
        newest = (await behind_proxy.get("/v1/audit", headers=t.auth)).json()["records"][0]
        assert newest["request_id"] == "proxy-req-000001"
        assert newest["address"] == "198.51.100.7"


@pytest.fixture
def json_log():
    """The process's logging as `rotator serve` sets it with ROTATOR_LOG_FORMAT=json, into
    a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("DEBUG", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.backends("single")
async def test_json_log_lines_carry_the_request_id_and_tenant_and_no_secret(
    settings, clock, json_log
):
    async with app_client(create_app(settings, clock=clock)) as first:
        t = await new_tenant(first)
    # a fresh process's first write logs that the test server does not fsync (WAITAOF off):
    # a line caused by this request
    async with app_client(create_app(settings, clock=clock)) as client:
        r = await client.post(
            "/v1/services", json={"slug": "logged", "policy": "usage"}, headers=t.auth
        )
        assert r.status_code == 201
        key = await client.post(
            "/v1/services/logged/keys", json={"label": "k", "secret": SECRET}, headers=t.auth
        )
        assert key.status_code == 201
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert lines, "no log line"
    for line in lines:
        assert {"time", "level", "logger", "message", "process"} <= set(line)
    caused = [x for x in lines if x.get("request_id") == r.headers["x-request-id"]]
    assert caused, lines
    assert all(x["tenant"] == t.id for x in caused)
    text = json_log.getvalue()
    for secret in (SECRET, t.admin_token, t.client_token):
        assert secret not in text
