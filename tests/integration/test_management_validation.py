"""Validation errors name the field, whether Litestar or the store found the problem."""

import pytest

from tests.integration.management import OPERATOR, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "usage"}, "slug"),
        ({"slug": "a", "policy": "usage", "bogus": 1}, "bogus"),
        ({"slug": 5, "policy": "usage"}, "slug"),
        ({"slug": "a", "policy": "nope"}, "policy"),
    ],
)
async def test_bad_body_names_the_field(client, body, field):
    t = await new_tenant(client)
    r = await client.post("/v1/services", json=body, headers=t.auth)
    assert r.status_code == 400
    assert r.json()["field"] == field
    assert r.json()["error"].startswith(f"{field}: ")


async def test_malformed_json_is_400(client):
    t = await new_tenant(client)
    r = await client.post("/v1/services", content=b"{", headers=t.auth)
    assert r.status_code == 400 and "error" in r.json()


async def test_openapi_schema_documents_bearer_auth(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "/v1/next" in spec["paths"] and "/v1/services/{slug}/rotate" in spec["paths"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "request body: missing: send a JSON object"),
        (b"null", "request body: Expected `object`, got `null`"),
        (b"[]", "request body: Expected `object`, got `array`"),
    ],
)
async def test_a_body_that_is_not_an_object_is_named_as_the_body(client, body, error):
    # found by schemathesis: an empty body was {"error": "data: 'data'", "field": "data"},
    # Litestar's internal name for the body
    t = await new_tenant(client)
    r = await client.post("/v1/services", content=body, headers=t.auth)
    assert (r.status_code, r.json()) == (400, {"error": error})


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        # JSON's own types only: Litestar's lenient conversion (right for query strings)
        # would take these, and a typo would make a demo tenant or set a limit
        ("POST", "/v1/admin/tenants", {"name": "x", "demo": 1}, "demo"),
        ("POST", "/v1/admin/tenants", {"name": "x", "demo": "true"}, "demo"),
        ("POST", "/v1/services", {"slug": "a", "policy": "usage", "max_daily_requests": "5"},
         "max_daily_requests"),
        ("PATCH", "/v1/services/openai/keys/1", {"active": "false"}, "active"),
        ("POST", "/v1/services/openai/keys/bulk", {"keys": [{"secret": "sk-x", "weight": "2"}]},
         "weight"),
    ],
)  # fmt: skip
async def test_a_value_of_the_wrong_json_type_is_refused_not_converted(
    client, method, path, body, field
):
    t = await new_tenant(client)
    await client.post("/v1/services", json={"slug": "openai", "policy": "usage"}, headers=t.auth)
    headers = OPERATOR if path.startswith("/v1/admin") else t.auth
    r = await client.request(method, path, json=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and f"{field}: Expected" in r.json()["error"]
    if path.startswith("/v1/admin"):
        listed = (await client.get("/v1/admin/tenants", headers=OPERATOR)).json()
        assert "x" not in [tenant["name"] for tenant in listed]  # nothing was created


@pytest.mark.parametrize(
    "bad",
    ["\x00", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u2066"],
    ids=["nul", "escape", "del", "nel", "line-sep", "para-sep", "rtl-override", "isolate"],
)
async def test_a_name_that_would_break_or_reorder_a_line_is_refused(client, bad):
    t = await new_tenant(client)
    r = await client.patch("/v1/tenant", json={"name": f"acme{bad}corp"}, headers=t.auth)
    assert (r.status_code, r.json()) == (
        400, {"error": "name: must not contain control characters", "field": "name"}
    )  # fmt: skip


async def test_a_name_in_any_script_with_emoji_is_kept(client):
    t = await new_tenant(client)
    name = "Café 東京 👩‍💻 שלום"  # a zero-width joiner inside the emoji: not a control
    r = await client.patch("/v1/tenant", json={"name": name}, headers=t.auth)
    assert (r.status_code, r.json()["name"]) == (200, name)
