"""No client input produces a 5xx or a traceback; bodies are read only after authentication.

The battery sends hostile bodies, content types, query strings, paths and Authorization
headers to every route the app has (listed from the app itself, so a new route is
covered the day it is added), with and without the right token, and asserts that every
answer is a 4xx (or 2xx) in our error shape and that nothing was logged at ERROR.
"""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from litestar import Litestar

from rotator.api.app import create_app
from rotator.api.body import MAX_BODY_BYTES, MAX_JSON_DEPTH, nesting_depth, too_deep
from tests.asgi import app_client
from tests.integration.management import (
    OPERATOR,
    Tenant,
    new_app,
    new_key,
    new_service,
    new_tenant,
)
from tests.integration.test_readiness import as_serve_leaves_it

DEEP = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"name":' * 1000 + b"1" + b"}" * 1000

HOSTILE_BODIES: list[bytes] = [
    DEEP,
    DEEP_OBJECT,
    b"[" * 100_000,  # unbalanced, and deep
    b'{"name": "' + b"[" * 5000 + b'"}',  # brackets inside a string are not nesting
    b"9" * 5000,
    b'{"name": 1e999999, "max_daily_requests": ' + b"9" * 5000 + b"}",
    b'{"max_daily_requests": -99999999999999999999999999999999}',
    b'{"name": "\xff\xfe\xfd"}',  # invalid UTF-8
    b'{"name": "a\x00b", "slug": "\x00"}',
    b"\x00" * 64,
    b'{"name": "\\ud800"}',  # a lone surrogate escape
    b'{"name": "x", "name": "y"}',
    b"",
    b"null",
    b"[]",
    b'"just a string"',
    b"{",
    b'{"ip_allowlist": ["' + b"1" * 10_000 + b'"], "webhook_events": [[[]]]}',
    b'{"webhook_url": "http://u:p@[::1", "webhook_secret": 5}',
    b"x" * (MAX_BODY_BYTES + 1),
    b"[" * (10 * 1024 * 1024),  # 10 MB
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "application/msgpack",
    "application/json; charset=latin-1",
    "\x01\x02",
]
QUERIES = [
    "days=%C2%B2",  # superscript two: isdigit() says yes, int() says no
    "cursor=%C2%B2",
    "cursor=" + "9" * 5000,
    "cursor=-1&limit=0",
    "limit=99999999999999999999999999999&days=-5",
    "days=1e400&limit=NaN&cursor=0x10",
    "%ff%fe=%ff&service=%00&token=%ff",
    "service=" + "s" * 20_000 + "&token=" + "t" * 20_000,
    "mask=" + "1" * 60_000,  # httpx refuses URLs over 64 kB
    "&&&==&=%&%%",
]
AUTHORIZATION: list[bytes] = [
    b"Bearer",
    b"Bearer ",
    b"Bearer \x00\x01",
    b"Basic Zm9vOmJhcg==",
    b"Bearer kta_",
    b"Bearer kta__",
    b"Bearer kta_x_y_z",
    b"Bearer krc_" + b"a" * 10_000,
    b"Bearer kta_\xff\xfe_\xff",
    b"bEaReR " + b"%00" * 100,
]
PATHS = [
    "/v1/apps/99999999999999999999999999999999999999",
    "/v1/apps/" + "9" * 5000,
    "/v1/apps/-1",
    "/v1/services/%00/keys",
    "/v1/services/%ff%fe/keys/1",
    "/v1/services/" + "s" * 10_000,
    "/v1/services/openai/keys/1.5",
    "/v1/services/openai/usage?days=%C2%B2",
    "/v1/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2fpyproject.toml",
    "/schema/%ff",
]
_PARAM = re.compile(r"\{(\w+):\w+\}")


def routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route the app serves, HEAD and OPTIONS too."""
    out = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", ())):
            out.append((method, route.path))
    return out


def fill(template: str, ids: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: ids.get(m.group(1), "x"), template)


async def seeded(client: httpx.AsyncClient) -> tuple[Tenant, dict[str, str]]:
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    app = await new_app(client, t)
    return t, {
        "slug": "openai",
        "key_id": str(key["id"]),
        "app_id": str(app["id"]),
        "file_path": "docs/init.js",
        "path": "nothing-here",
    }


def token_for(path: str, t: Tenant) -> str:
    if path.startswith("/v1/admin"):
        return OPERATOR["Authorization"].removeprefix("Bearer ")
    if path in ("/v1/next", "/keyrotator/api/next.php", "/v1/report"):
        return t.client_token
    return t.admin_token


def assert_client_error(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:200]}"
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        assert isinstance(body.get("error"), str), f"{what}: {body}"
        assert set(body) <= {"error", "field", "index"}, f"{what}: {body}"
        if "index" in body:  # an entry of a list: its index, and the field as the body names it
            assert isinstance(body["index"], int) and "[" not in body["field"], f"{what}: {body}"


# every route times every hostile input: it grows with each route (122 s at load 8, 2 cores)
@pytest.mark.timeout(300)
async def test_hostile_input_never_5xx_nor_logged(settings, redis, clock, caplog):
    await as_serve_leaves_it(redis, settings, clock)  # so /readyz is 200, not a 503
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        await battery(app, client, caplog)


async def battery(app: Litestar, client: httpx.AsyncClient, caplog) -> None:
    t, ids = await seeded(client)
    table = routes(app)
    assert len(table) >= 20  # the listing works: every management route is in it
    sent = 0
    with caplog.at_level(logging.WARNING):
        for method, template in table:
            path = fill(template, ids)
            for auth in (None, token_for(template, t).encode()):
                headers = {"authorization": b"Bearer " + auth} if auth else {}
                for body in HOSTILE_BODIES:
                    r = await client.request(method, path, content=body, headers=headers)
                    assert_client_error(r, f"{method} {path} body={body[:40]!r} auth={bool(auth)}")
                    sent += 1
                for ctype in CONTENT_TYPES:
                    r = await client.request(
                        method,
                        path,
                        content=b'{"name": "x"}',
                        headers={**headers, "content-type": ctype.encode()},
                    )
                    assert_client_error(r, f"{method} {path} content-type={ctype!r}")
                    sent += 1
                for query in QUERIES:
                    r = await client.request(method, f"{path}?{query}", headers=headers)
                    assert_client_error(r, f"{method} {path}?{query[:60]}")
                    sent += 1
            for value in AUTHORIZATION:
                r = await client.request(
                    method, path, content=DEEP, headers={"authorization": value}
                )
                assert_client_error(r, f"{method} {path} authorization={value[:30]!r}")
                sent += 1
        for path in PATHS:
            for method in ("GET", "PATCH", "DELETE", "POST"):
                r = await client.request(method, path, headers=t.auth, content=DEEP)
                assert_client_error(r, f"{method} {path[:60]}")
                sent += 1
    assert sent > 1000
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


# --- authenticate first ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/v1/tenant"), ("POST", "/v1/services"), ("POST", "/v1/admin/tenants")],
)
@pytest.mark.parametrize("body", [DEEP, b"[" * (10 * 1024 * 1024), b"{"])
async def test_unauthenticated_body_is_never_read(client, caplog, method, path, body):
    with caplog.at_level(logging.WARNING):
        r = await client.request(method, path, content=body, headers={"authorization": "Bearer x"})
    assert r.status_code == 401
    assert r.json()["error"].startswith("invalid or missing")
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


# --- authenticated bad bodies: 400 naming the problem ------------------------------------------
@pytest.mark.backends("single", "cluster")
async def test_deep_body_is_400_naming_nesting(client, caplog):
    t = await new_tenant(client)
    with caplog.at_level(logging.WARNING):
        for body in (DEEP, DEEP_OBJECT):
            r = await client.patch("/v1/tenant", content=body, headers=t.auth)
            assert r.status_code == 400, r.text
            assert r.json() == {
                "error": f"request body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
            }
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{", {"error": "request body: not valid JSON"}),
        (b'{"name": "\xff"}', {"error": "request body: not valid JSON"}),
        (b'{"name": 5}', {"error": "name: Expected `str`, got `int`", "field": "name"}),
        (b'{"nmae": "x"}', {"field": "nmae"}),
        (b'{"ip_allowlist": "10.0.0.0/8"}', {"field": "ip_allowlist"}),
    ],
)
async def test_bad_body_is_400_naming_the_problem(client, body, expected):
    t = await new_tenant(client)
    r = await client.patch("/v1/tenant", content=body, headers=t.auth)
    assert r.status_code == 400, r.text
    got = r.json()
    for name, value in expected.items():
        assert got[name].startswith(value), got


async def test_body_over_the_cap_is_413(client):
    t = await new_tenant(client)
    body = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    r = await client.patch("/v1/tenant", content=body, headers=t.auth)
    assert r.status_code == 413
    assert r.json() == {"error": f"request body larger than {MAX_BODY_BYTES} bytes"}
    # and one just under the cap is read (and refused for its content, not its size)
    body = b'{"name": "' + b"x" * (MAX_BODY_BYTES - 20) + b'"}'
    r = await client.patch("/v1/tenant", content=body, headers=t.auth)
    assert r.status_code == 400 and r.json()["field"] == "name"


# --- the depth scan itself ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"5", 0),
        (b"{}", 1),
        (b'{"a": [1, [2, {"b": []}]]}', 5),
        (b'{"a": "[[[[[[", "b": ["]]]"]}', 2),  # brackets in strings do not count
        (b'["\\"[[[", [1]]', 2),  # an escaped quote does not end the string
        (b'["\\\\", [[1]]]', 3),  # an escaped backslash does
        (b'"unterminated [[[[', 0),
        (b"[[[[", 4),
    ],
)
def test_nesting_depth(body, depth):
    assert nesting_depth(body) == depth


def test_too_deep_fast_path_and_scan():
    assert not too_deep(b"[" * MAX_JSON_DEPTH)
    assert too_deep(b"[" * (MAX_JSON_DEPTH + 1))
    # many brackets side by side are not deep
    assert not too_deep(b"[" + b"[]," * 10_000 + b"[]]")
    # a quote-heavy body is scanned in linear time (no backtracking blow-up)
    assert not too_deep(b'"\\"' * 300_000 + b"[]" * 40)
