"""The console's forms for the new policies, key weights and per-minute limits, over HTTP: the
same store functions as the API (the records read back through the API), refusals shown next
to their field with what the user typed."""

from __future__ import annotations

import pytest

from tests.integration.console_support import field_errors, post_form, sign_in
from tests.integration.management import new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def test_create_a_weighted_service_with_a_per_minute_limit(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    page = await client.get("/app/new-service")
    for policy in ("round_robin", "weighted", "least_recently_used"):
        assert f'id="policy-{policy}"' in page.text
    r = await post_form(client, "/app/new-service", {
        "slug": "openai", "policy": "weighted", "max_requests_per_minute": "600",
    })  # fmt: skip
    assert r.status_code == 303, r.text
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert (service["policy"], service["max_requests_per_minute"]) == ("weighted", 600)
    page = await client.get("/app/services/openai")
    assert "600 in any 60 s" in page.text

    r = await post_form(client, "/app/services/openai/edit", {
        "policy": "least_recently_used", "max_requests_per_minute": "",
    })  # fmt: skip
    assert r.status_code == 303, r.text
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert (service["policy"], service["max_requests_per_minute"]) == ("least_recently_used", None)


async def test_add_and_edit_a_key_with_weight_and_per_minute_limit(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="weighted")
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/services/openai/keys", {
        "label": "Big", "secret": "sk-proj-console-weight-0123456789", "weight": "5",
        "max_requests_per_minute": "60",
    })  # fmt: skip
    assert r.status_code == 303, r.text
    (key,) = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert (key["weight"], key["max_requests_per_minute"]) == (5, 60)
    page = await client.get("/app/services/openai")
    assert "Weight 5" in page.text and "at most 60 a minute" in page.text

    r = await post_form(client, f"/app/services/openai/keys/{key['id']}", {
        "label": "Big", "max_daily_requests": "", "max_requests_per_minute": "", "weight": "2",
    })  # fmt: skip
    assert r.status_code in (200, 303), r.text
    (key,) = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert (key["weight"], key["max_requests_per_minute"]) == (2, None)

    # a key added without a weight gets 1
    r = await post_form(client, "/app/services/openai/keys", {
        "label": "Small", "secret": "sk-proj-console-weight-abcdefghij", "weight": "",
    })  # fmt: skip
    assert r.status_code == 303, r.text
    keys = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert [k["weight"] for k in keys] == [2, 1]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"weight": "0"}, "weight"), ({"weight": "1001"}, "weight"),
     ({"max_requests_per_minute": "0"}, "max_requests_per_minute")],
)  # fmt: skip
async def test_refusals_are_shown_next_to_the_field(client, fields, field):
    t = await new_tenant(client)
    await new_service(client, t, policy="weighted")
    key = await new_key(client, t)
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/services/openai/keys", {
        "label": "New", "secret": "sk-proj-console-refused-0123456789", **fields,
    })  # fmt: skip
    assert r.status_code == 400
    assert field in field_errors(r)
    assert "sk-proj-console-refused" not in r.text  # the secret is never sent back
    r = await post_form(client, f"/app/services/openai/keys/{key['id']}", {
        "label": "Primary", **fields,
    })  # fmt: skip
    assert r.status_code == 400
    short = {"weight": "weight", "max_requests_per_minute": "rpm"}[field]
    assert f"{short}-{key['id']}" in field_errors(r)


async def test_a_service_refusal_names_the_per_minute_field(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/new-service", {
        "slug": "openai", "policy": "usage", "max_requests_per_minute": "0",
    })  # fmt: skip
    assert r.status_code == 400
    assert "max_requests_per_minute" in field_errors(r)
    assert 'value="0"' in r.text
