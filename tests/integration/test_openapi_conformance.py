"""The OpenAPI document matches the API: a bounded schemathesis run over every operation.

One real API process (uvicorn, real sockets) on the test Valkey; before each operation's
run a fresh tenant with a service, a key and an app, so paths with ids hit real
resources, and the right token for the operation (operator, tenant admin, or client
token for /v1/next). Checks: no server error, documented status codes, response
bodies matching their schema, documented content types and headers.

Bounded and repeatable: MAX_EXAMPLES per operation, Hypothesis derandomized (the same
cases on every run), no deadline (a 2-core CI under load must not flake).

One pytest test per operation, parametrized here rather than by `schema.parametrize()`:
schemathesis gives the items that makes one node id, so pytest-xdist (how `make test`
runs) ran the first operation only and reported it as the whole.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.serialization import encode_json
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.settings import Settings
from tests.conftest import OPERATOR_TOKEN
from tests.live import env_for, live_api

MAX_EXAMPLES = 30
SLUG = "openai"
WORLDS = itertools.count(1)
"""Numbers each test's tenant: the live API's store is the module's, and names are unique."""


def _document() -> dict[str, Any]:
    """The document as the app serves it; building it needs no store."""
    ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    app = create_app(Settings(redis_url="redis://127.0.0.1:1", master_key=ring))
    return json.loads(encode_json(app.openapi_schema.to_schema()))


schema = schemathesis.openapi.from_dict(_document())
OPERATIONS = sorted(
    (result.ok() for result in schema.get_all_operations()), key=lambda op: op.label
)
"""Sorted: every xdist worker must collect the same list in the same order."""


@pytest.fixture(scope="module")
def api(valkey, master_key_b64):
    env = env_for(valkey.url, master_key_b64, admin_token=OPERATOR_TOKEN, webhook_allow_private="1")
    with live_api(env) as base:
        yield base


@pytest.fixture
def world(api) -> dict[str, Any]:
    """A fresh tenant with one of each resource, made over HTTP like a client would."""
    with httpx.Client(base_url=api, timeout=10) as http:
        r = http.post(
            "/v1/admin/tenants",
            json={"name": f"conformance {next(WORLDS)}"},
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
        assert r.status_code == 201, r.text
        tenant = r.json()
        auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
        # a daily limit, so /v1/next answers with RateLimit headers, then its 429
        service = {"slug": SLUG, "policy": "manual", "max_daily_requests": 10}
        http.post("/v1/services", json=service, headers=auth)
        key = http.post(
            f"/v1/services/{SLUG}/keys", json={"label": "k", "secret": "sk-conf-0123456789"},
            headers=auth,
        ).json()  # fmt: skip
        http.post(
            f"/v1/services/{SLUG}/keys", json={"label": "k2", "secret": "sk-conf-9876543210"},
            headers=auth,
        )  # fmt: skip
        app = http.post("/v1/apps", json={"name": "web"}, headers=auth).json()
    return {
        "base": api,
        "admin": tenant["admin_token"],
        "client": tenant["client_token"],
        "ids": {"slug": SLUG, "key_id": key["id"], "app_id": app["id"], "tenant_id": tenant["id"]},
    }


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' not_a_server_error, minus the one 5xx the contract defines for a
    healthy store: 503 "no active keys" (a service whose keys were disabled or deleted, or
    are all cooling down after reports: then with Retry-After)."""
    if response.status_code < 500:
        return
    body = response.json() if "json" in response.headers.get("content-type", [""])[0] else None
    assert response.status_code == 503 and body == {"error": "no active keys"}, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def prepare(case: Any, world: dict[str, Any]) -> dict[str, str]:
    """Real ids in the path, the operation's token; returns the headers to send."""
    if case.path_parameters:
        case.path_parameters = {k: world["ids"][k] for k in case.path_parameters}
    path = case.operation.path
    if path.startswith("/v1/admin") or path == "/metrics":
        token = OPERATOR_TOKEN
    elif path in ("/v1/next", "/keyrotator/api/next.php"):
        token = world["client"]
        case.query = {**(case.query or {}), "service": SLUG}
        case.query.pop("token", None)
    elif path == "/v1/report":
        # the client token, and (when the generated body is an object) the seeded service
        # and key, so reports reach the script rather than stopping at 404
        token = world["client"]
        query = case.query or {}
        case.query = {k: v for k, v in query.items() if k not in ("token", "app_token")}
        if isinstance(case.body, dict) and "service" in case.body:
            case.body = {**case.body, "service": SLUG, "key_id": world["ids"]["key_id"]}
    else:
        token = world["admin"]
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_api_matches_its_openapi_document(operation, world):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def conforms(case):
        headers = prepare(case, world)
        case.call_and_validate(base_url=world["base"], headers=headers, checks=CHECKS)

    conforms()


def test_every_operation_is_tested():
    labels = {op.label for op in OPERATIONS}
    assert len(labels) == len(OPERATIONS) > 30
    assert {"GET /v1/next", "POST /v1/report", "PATCH /v1/services/{slug}"} <= labels


def test_every_error_is_documented_in_our_shape():
    doc = _document()
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
    assert '"detail"' not in json.dumps(doc)  # Litestar's own {status_code, detail, extra}
    for path, item in doc["paths"].items():
        if path in ("/readyz", "/metrics"):
            continue  # for machines: their own answers (a readiness report, 401 or the text)
        for method, op in item.items():
            statuses = set(op["responses"])
            assert {"400", "503"} <= statuses, (method, path)
            if not path.startswith(("/v1/next", "/keyrotator", "/v1/report")):
                assert "401" in statuses, (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)


def test_delivery_operation_documents_what_the_handler_reads():
    op = _document()["paths"]["/v1/next"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["service", "token", "app_token", "mask"]
    assert {"bearer": []} in op["security"]
    assert set(op["responses"]) == {"200", "400", "403", "404", "429", "500", "503"}
    assert op["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
