"""The console's import page over HTTP: an uploaded or pasted export, all or nothing, with the
refused rows listed by number and the content never sent back (the store's rules: the same
as `rotator import`, tests/integration/test_import.py)."""

from __future__ import annotations

import html

import pytest

from tests.integration.console_support import csrf_of, sign_in
from tests.integration.management import deliver, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

SECRETS = [f"sk-proj-console-import-{i}-abcdefghijklmnopq" for i in range(3)]


async def post_import(client, *, content: str = "", file: tuple[str, bytes] | None = None):
    token = csrf_of(await client.get("/app/import"))
    files = {"file": (file[0], file[1], "text/csv")} if file else {"file": ("", b"", "text/csv")}
    return await client.post(
        "/app/import", data={"content": content, "_csrf_token": token}, files=files
    )


async def test_an_uploaded_file_is_imported(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")  # openai exists: it gets the key
    await sign_in(client, t.admin_token)
    services_page = await client.get("/app/services")
    assert 'href="/app/import"' in services_page.text
    csv = (
        "slug,policy,limit,label,secret\n"
        f"openai,,,Imported,{SECRETS[0]}\n"
        f"stripe,usage,500,Live,{SECRETS[1]}\n"
    )
    r = await post_import(client, file=("export.csv", csv.encode()))
    assert r.status_code == 200, r.text
    page = html.unescape(r.text)
    assert "2 keys imported" in page and "shred -u FILE" in page
    assert "created now" in page and "already there" in page
    assert not any(s in r.text for s in SECRETS)
    stripe = (await client.get("/v1/services/stripe", headers=t.auth)).json()
    assert stripe["policy"] == "usage" and stripe["max_daily_requests"] == 500
    r = await deliver(client, t.client_token, "stripe")
    assert r.json()["key"] == SECRETS[1]


async def test_pasted_json_is_imported(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await post_import(
        client, content=f'[{{"slug": "openai", "policy": "usage", "secret": "{SECRETS[2]}"}}]'
    )
    assert r.status_code == 200 and "1 key imported" in r.text
    keys = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert len(keys) == 1


async def test_refused_rows_are_listed_and_nothing_is_imported(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    await sign_in(client, t.admin_token)
    csv = (
        "slug,policy,label,secret\n"
        f"stripe,usage,A,{SECRETS[0]}\n"  # fine alone
        f"openai,usage,B,{SECRETS[1]}\n"  # row 3: openai exists with policy manual
        f"Bad!,usage,C,{SECRETS[2]}\n"  # row 4
    )
    r = await post_import(client, content=csv)
    assert r.status_code == 400
    page = html.unescape(r.text)
    assert "Nothing was imported." in page and 'role="alert"' in page
    assert "Row 3, policy: service openai exists with policy manual" in page
    assert "Row 4, slug: 1-64 characters" in page
    assert not any(s in r.text for s in SECRETS)  # the content is not sent back
    listed = (await client.get("/v1/services", headers=t.auth)).json()
    assert [s["slug"] for s in listed] == ["openai"]

    empty = await post_import(client)
    assert empty.status_code == 400 and "choose a file, or paste its content" in empty.text
