"""Helpers of the console tests: sign in over HTTP, read CSRF tokens and field errors."""

from __future__ import annotations

import html
import re

import httpx

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
_ERROR = re.compile(r'<p class="error" id="([^"]+)-error">([^<]*)</p>')


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, f"no CSRF field in {page.request.url}"
    return found.group(1)


def field_errors(page: httpx.Response) -> dict[str, str]:
    """{field: message} of the errors shown next to fields."""
    return {field: html.unescape(msg) for field, msg in _ERROR.findall(page.text)}


async def post_form(client: httpx.AsyncClient, url: str, data: dict, **kw) -> httpx.Response:
    """POST a console form the way a browser does: with the CSRF token of a page it loaded."""
    token = csrf_of(await client.get("/app/signin"))
    return await client.post(url, data={**data, "_csrf_token": token}, **kw)


async def sign_in(
    client: httpx.AsyncClient, token: str, path: str = "/app/signin"
) -> httpx.Response:
    page = await client.get(path)
    return await client.post(path, data={"token": token, "_csrf_token": csrf_of(page)})


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [v for v in response.headers.get_list("set-cookie") if v.startswith(name + "=")]
