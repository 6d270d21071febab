"""Every console address answers in the console's HTML with its headers, whatever layer
refuses the request (routing, a query parameter, the body's size or its form), and a form
body that is not UTF-8 is refused, never stored with replacement characters."""

from __future__ import annotations

import httpx
import pytest

from rotator.api.body import MAX_BODY_BYTES
from rotator.console.security import PAGE_HEADERS
from rotator.request_ids import PROXY_ID
from tests.conftest import OPERATOR_TOKEN
from tests.integration.console_support import csrf_of, sign_in
from tests.integration.management import new_tenant


def assert_console_page(r: httpx.Response, status: int) -> None:
    where = f"{r.request.method} {r.request.url}"
    assert r.status_code == status, (where, r.text[:300])
    assert r.headers["content-type"].startswith("text/html"), where
    for name, value in PAGE_HEADERS.items():
        assert r.headers.get(name) == value, (where, name)
    assert r.text.lstrip().startswith("<!doctype html>"), where
    assert '{"error"' not in r.text, where  # not the API's JSON
    # every answer names its request, a refusal from a middleware (the CSRF check) too
    (request_id,) = r.headers.get_list("x-request-id")
    assert PROXY_ID.fullmatch(request_id), where


async def test_an_over_long_activity_filter_is_a_console_400(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    for query in ({"action": "a" * 65}, {"cursor": "1" * 42}):
        r = await client.get("/app/activity", params=query)
        assert_console_page(r, 400)
        assert "Back to the console" in r.text
    await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    for query in ({"tenant": "t" * 65}, {"action": "a" * 65}, {"cursor": "1" * 42}):
        r = await client.get("/app/operator/activity", params=query)
        assert_console_page(r, 400)
        assert "Back to the operator console" in r.text
    # a filter within the limits still shows the page
    assert (await client.get("/app/activity", params={"action": "a" * 64})).status_code == 200


async def test_a_form_body_over_the_size_cap_is_a_console_413(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    token = csrf_of(await client.get("/app/apps"))
    big = {"name": "x" * MAX_BODY_BYTES, "_csrf_token": token}
    r = await client.post("/app/apps", data=big)  # the CSRF check reads the form first
    assert_console_page(r, 413)
    r = await client.post("/app/apps", data=big, headers={"x-csrftoken": token})  # htmx's way
    assert_console_page(r, 413)
    assert (await client.get("/v1/apps", headers=t.auth)).json() == []


async def test_a_method_no_console_page_takes_is_a_console_405(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    token = csrf_of(await client.get("/app/apps"))
    for method, path in (
        ("PUT", "/app/services"),
        ("DELETE", "/app/apps"),
        ("PATCH", "/app/settings/client-token"),
        ("DELETE", "/app/operator/tenants"),
    ):
        r = await client.request(method, path, headers={"x-csrftoken": token})
        assert_console_page(r, 405)
        assert "GET" in r.headers["allow"] or "POST" in r.headers["allow"], path
    # a GET of a form's address still goes to the form's page
    r = await client.get("/app/settings/client-token")
    assert (r.status_code, r.headers["location"]) == (303, "/app/settings")
    # and the API keeps its own answer
    r = await client.delete("/v1/webhooks/test", headers=t.auth)
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("csrf_in", ["header", "form"])
async def test_a_malformed_import_upload_is_a_console_400(client, csrf_in):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    token = csrf_of(await client.get("/app/import"))
    headers = {"x-csrftoken": token} if csrf_in == "header" else {}
    bodies = (
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nno headers, no end"),
        ("multipart/form-data", b"a boundary missing from the header"),
    )
    for content_type, body in bodies:
        r = await client.post(
            "/app/import", content=body, headers={**headers, "content-type": content_type}
        )
        assert_console_page(r, 400)
    assert (await client.get("/v1/services", headers=t.auth)).json() == []


def _urlencoded(**fields: bytes) -> bytes:
    return b"&".join(name.encode() + b"=" + value for name, value in fields.items())


async def test_a_form_that_is_not_utf8_is_refused_and_nothing_is_stored(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    token = csrf_of(await client.get("/app/apps")).encode()
    form = {"content-type": "application/x-www-form-urlencoded"}
    for name in (b"web%FF", b"caf\xe9", b"%C3"):  # percent-encoded, raw Latin-1, cut short
        body = _urlencoded(name=name, _csrf_token=token)
        r = await client.post("/app/apps", content=body, headers=form)
        assert_console_page(r, 400)
        assert "UTF-8" in r.text
        r = await client.post(
            "/app/apps", content=body, headers={**form, "x-csrftoken": token.decode()}
        )
        assert_console_page(r, 400)
    # a multipart text field too (the import form's pasted content)
    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="_csrf_token"\r\n\r\n' + token + b"\r\n"
        b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nslug\xff\r\n--b--\r\n'
    )
    r = await client.post(
        "/app/import",
        content=multipart,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert_console_page(r, 400)
    assert (await client.get("/v1/apps", headers=t.auth)).json() == []
    # UTF-8, percent-encoded as browsers send it or raw, is stored as typed
    for name in (b"caf%C3%A9", "bücher".encode()):
        body = _urlencoded(name=name, _csrf_token=token)
        assert (await client.post("/app/apps", content=body, headers=form)).status_code == 200
    names = sorted(a["name"] for a in (await client.get("/v1/apps", headers=t.auth)).json())
    assert names == ["bücher", "café"]
    assert not any("\ufffd" in n for n in names)


async def test_a_form_without_its_csrf_token_is_a_console_403_with_a_request_id(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await client.post("/app/apps", data={"name": "x", "_csrf_token": "x" * 64})
    assert_console_page(r, 403)
    assert "expired" in r.text


async def test_a_page_refusing_inside_its_handler_names_the_request_once(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    assert_console_page(await client.get("/app/services/nope"), 404)
