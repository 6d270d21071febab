"""Response headers (nosniff everywhere, no-store on the API) and the self-hosted docs page."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files

import pytest

from rotator.api.docs import CONTENT_SECURITY_POLICY
from tests.integration.management import (
    OPERATOR,
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

pytestmark = pytest.mark.backends("single", "cluster")


def assert_api_headers(r, what: str = "") -> None:
    assert r.headers.get("x-content-type-options") == "nosniff", (what, r.headers)
    assert r.headers.get("cache-control") == "no-store", (what, r.headers)


async def test_secrets_and_tokens_are_never_cached(client):
    """Every response that carries a plaintext key or a token shown once: no-store."""
    r = await client.post("/v1/admin/tenants", json={"name": "acme"}, headers=OPERATOR)
    assert r.status_code == 201
    assert_api_headers(r, "tenant creation")
    body = r.json()
    auth = {"Authorization": f"Bearer {body['admin_token']}"}
    r = await client.post("/v1/tenant/client-token", headers=auth)
    assert_api_headers(r, "client token reissue")
    client_token = r.json()["client_token"]
    r = await client.patch("/v1/tenant", json={"webhook_url": "http://127.0.0.1:9/"}, headers=auth)
    assert r.json()["webhook_secret"].startswith("whsec_")
    assert_api_headers(r, "generated webhook secret")
    r = await client.post("/v1/apps", json={"name": "web"}, headers=auth)
    assert r.status_code == 201
    assert_api_headers(r, "app creation")

    r = await client.post("/v1/services", json={"slug": "openai", "policy": "usage"}, headers=auth)
    assert_api_headers(r, "service creation")
    key = {"label": "k", "secret": "sk-plain-0123456789"}
    r = await client.post("/v1/services/openai/keys", json=key, headers=auth)
    assert_api_headers(r, "key creation")
    r = await deliver(client, client_token)
    assert r.status_code == 200 and r.json()["key"] == "sk-plain-0123456789"
    assert_api_headers(r, "/v1/next 200")
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)


async def test_errors_carry_the_headers(client):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t)
    await new_app(client, t)
    cases = [
        await client.get("/v1/next"),  # 400 missing token or service
        await client.get("/v1/next", params={"service": "openai", "token": "krc_x_y"}),  # 403
        await deliver(client, t.client_token, "nope"),  # 404 unknown service
        await client.get("/v1/tenant"),  # 401
        await client.get("/v1/services/nope", headers=t.auth),  # 404 from the store
        await client.post("/v1/services", json={"slug": 1}, headers=t.auth),  # 400 validation
        await client.get("/no/such/route"),  # 404 from routing
        await client.put("/v1/tenant", headers=t.auth),  # 405
    ]
    for r in cases:
        assert r.status_code >= 400
        assert_api_headers(r, r.request.url)


class _Refs(HTMLParser):
    """Every URL an HTML page makes the browser load, and any inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action", "data", "poster") and value:
                self.urls.append(value)
            assert not name.startswith("on"), f"inline event handler {name}"
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


@pytest.mark.backends("single")
async def test_docs_page_is_self_hosted_under_a_strict_policy(client):
    r = await client.get("/schema")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert r.headers["x-content-type-options"] == "nosniff"

    refs = _Refs()
    refs.feed(r.text)
    assert refs.inline_scripts == []
    assert refs.urls, "the page loads its UI from somewhere"
    for url in refs.urls:
        # same origin: an absolute path, never another host (no scheme, no //host)
        assert re.fullmatch(r"/[A-Za-z0-9/._-]*", url), url
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in refs.urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert asset.headers["content-type"].startswith(expected_types[suffix]), url
        assert asset.headers["x-content-type-options"] == "nosniff", url
        # and it is a file the package installs, not something fetched at run time
        assert (files("rotator") / url.removeprefix("/")).is_file(), url

    init = (await client.get("/static/docs/init.js")).text
    assert 'url: "/schema/openapi.json"' in init
    assert "validatorUrl: null" in init  # the default posts the document to swagger.io


@pytest.mark.backends("single")
async def test_schema_documents_stay_and_cdn_pages_are_gone(client):
    for path, media in (
        ("/schema/openapi.json", "application/vnd.oai.openapi+json"),
        ("/schema/openapi.yaml", "application/vnd.oai.openapi"),
    ):
        r = await client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(media), path
    for path in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc"):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert "cdn" not in r.text.lower() and "<script" not in r.text.lower(), path


@pytest.mark.backends("single")
async def test_static_files_stay_inside_the_package(client):
    for path in (
        "/static/../pyproject.toml",
        "/static/%2e%2e/api/app.py",
        "/static/..%2f..%2fpyproject.toml",
        "/static/vendor/nothing.js",
    ):
        r = await client.get(path)
        assert r.status_code == 404, path
