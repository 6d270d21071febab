"""Imported tokens in the console: a password field on the operator's tenant form, the
Client Access Token form, the new-app form and an app's token form; the store's rules."""

from __future__ import annotations

import re

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.integration.console_support import field_errors, post_form, sign_in
from tests.integration.management import deliver, new_key, new_service, new_tenant

HOSTED = "52yseGC525k55YpyHUeAdoYrb77WYJ037sPHhQ"
OTHER = "Zq-9_hosted-app-token-0123456789"


def token_inputs(page) -> list[str]:
    return re.findall(
        r'<input id="(\w+_token)" name="\w+" type="password" autocomplete="off"', page.text
    )


async def test_the_operator_creates_a_tenant_keeping_its_token(client):
    assert (await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")).status_code == 303
    page = await client.get("/app/operator")
    assert token_inputs(page) == ["client_token"]
    r = await post_form(client, "/app/operator/tenants", {"name": "acme", "client_token": HOSTED})
    assert r.status_code == 200 and HOSTED in r.text  # shown in this answer, once
    again = await post_form(client, "/app/operator/tenants", {"name": "b", "client_token": HOSTED})
    assert again.status_code == 400
    assert "already uses this token" in field_errors(again)["client_token"]
    assert HOSTED not in again.text  # a refused form does not show the token again
    bad = await post_form(client, "/app/operator/tenants", {"name": "c", "client_token": "short"})
    assert bad.status_code == 400 and "20 to 200" in field_errors(bad)["client_token"]
    empty = await post_form(client, "/app/operator/tenants", {"name": "d", "client_token": ""})
    assert empty.status_code == 200 and "krc_" in empty.text  # empty: one of ours


async def test_the_tenant_reissues_and_creates_with_chosen_tokens(client):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    assert (await sign_in(client, t.admin_token)).status_code == 303
    assert token_inputs(await client.get("/app/settings")) == ["client_token"]
    r = await post_form(client, "/app/settings/client-token", {"client_token": HOSTED})
    assert r.status_code == 200 and HOSTED in r.text
    assert (await deliver(client, HOSTED)).status_code == 200
    ours = await post_form(
        client, "/app/settings/client-token", {"client_token": "krc_" + t.id + "_" + "s" * 20}
    )
    assert ours.status_code == 400 and "issued here" in field_errors(ours)["client_token"]
    assert (await deliver(client, HOSTED)).status_code == 200  # nothing changed

    assert token_inputs(await client.get("/app/apps")) == ["app_token"]
    created = await post_form(client, "/app/apps", {"name": "web", "app_token": OTHER})
    assert created.status_code == 200 and OTHER in created.text
    app_id = re.search(r'href="/app/apps/(\d+)"', created.text).group(1)
    taken = await post_form(client, "/app/apps", {"name": "web2", "app_token": HOSTED})
    assert taken.status_code == 400 and "already uses" in field_errors(taken)["app_token"]
    assert HOSTED not in taken.text

    page = await client.get(f"/app/apps/{app_id}")
    assert token_inputs(page) == ["app_token"]
    bad = await post_form(
        client, f"/app/apps/{app_id}/token", {"app_token": "has spaces in it, long enough"}
    )
    assert bad.status_code == 400 and "A-Z" in field_errors(bad)["app_token"]
    fresh = await post_form(client, f"/app/apps/{app_id}/token", {"app_token": ""})
    assert fresh.status_code == 200 and "kra_" in fresh.text
    r = await client.get("/v1/next", params={"service": "openai", "app_token": OTHER})
    assert r.status_code == 403


@pytest.mark.parametrize("path", ["/app/settings", "/app/apps"])
async def test_the_fields_are_described(client, path):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    page = await client.get(path)
    name = token_inputs(page)[0]
    assert f'<label for="{name}">' in page.text and f'id="{name}-hint"' in page.text
