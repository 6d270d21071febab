"""GET /v1/next's own machinery (rotator/api/delivery.py and its parts): every answer byte for
byte, request ids, both token kinds, mask and demo, the alias path, other methods, odd query
strings, and the decrypted-key cache's invalidation; on a single server and a cluster.

The contract tests of the delivery itself are in test_delivery_http.py; these pin what the
bare ASGI handler now does instead of Litestar: each answer is compared as bytes with what
the app's error table and msgspec give (the way the `@get` handler answered).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any

import msgspec
import pytest
from litestar import Litestar

from rotator.api.app import create_app
from rotator.api.delivery import Limits, Meta, NextKey
from rotator.api.errors import rotator_error
from rotator.crypto import aad_for_key
from rotator.domain import errors, tokens
from rotator.domain.masking import mask
from rotator.request_ids import PROXY_ID
from rotator.store import keys
from tests.asgi import app_client
from tests.integration.management import new_app, new_key, new_service, new_tenant
from tests.integration.test_delivery_http import SECRET, seeded
from tests.lua import seed

pytestmark = pytest.mark.backends("single", "cluster")

MADE_ID = re.compile(rb"[0-9a-f]{16}-[0-9a-f]+")


def error_bytes(exc: errors.RotatorError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """What the app's error table answers for `exc`: (status, body, headers)."""
    response = rotator_error(None, exc)  # type: ignore[arg-type]
    body = response.render(response.content, "application/json")
    headers = [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    return response.status_code, body, [*headers, (b"content-type", b"application/json")]


def check_answer(r, exc: errors.RotatorError) -> None:
    """`r` is, byte for byte, the error table's answer for `exc` plus a made X-Request-ID."""
    status, body, headers = error_bytes(exc)
    assert (r.status_code, r.content) == (status, body)
    raw = [(k.lower(), v) for k, v in r.headers.raw]
    assert raw[: len(headers)] == headers
    assert raw[len(headers) :] == [
        (b"content-length", b"%d" % len(body)),
        (b"x-request-id", raw[-1][1]),
    ] or raw[len(headers) :] == [
        (b"x-request-id", raw[-2][1]),
        (b"content-length", b"%d" % len(body)),
    ]
    assert MADE_ID.fullmatch(r.headers["x-request-id"].encode())


async def test_every_refusal_is_the_error_tables_answer(client, redis, settings):
    t, token = await seeded(redis, settings)
    q = {"token": token}
    check_answer(await client.get("/v1/next", params={"token": token}), errors.MissingParams())
    check_answer(
        await client.get("/v1/next", params={"service": "openai", "token": "nope"}),
        errors.InvalidToken(),
    )
    r = await client.get("/v1/next", params={**q, "service": "nope"})
    check_answer(r, errors.UnknownService())
    await seed.service(redis, t, "empty", policy="manual")
    check_answer(
        await client.get("/v1/next", params={**q, "service": "empty"}), errors.NoActiveKeys()
    )
    await seed.service(redis, t, "capped", policy="usage", max_daily=1)
    await seed.key(redis, settings.keyring, t, "capped", "sk-capped-0000000000")
    assert (await client.get("/v1/next", params={**q, "service": "capped"})).status_code == 200
    r = await client.get("/v1/next", params={**q, "service": "capped"})
    check_answer(r, errors.DailyLimitReached("service", retry_after_s=43_200))
    await seed.service(redis, t, "foreign", policy="usage")
    await redis.hset(
        keys.service(t.tenant, "foreign"),
        mapping={"ids": "99", "l:99": "x", "a:99": "1", "m:99": "", "c:99": b"\x02broken"},
    )
    check_answer(
        await client.get("/v1/next", params={**q, "service": "foreign"}), errors.KeyDecryptFailed()
    )
    await seed.tenant_fields(redis, t.tenant, allow="f" * 64)
    check_answer(
        await client.get("/v1/next", params={**q, "service": "openai"}), errors.IpNotAllowed()
    )


async def test_demo_rate_limit_answer(client, redis, settings):
    _, token = await seeded(redis, settings, demo=True)
    for _ in range(settings.demo_burst):
        assert (
            await client.get("/v1/next", params={"service": "openai", "token": token})
        ).status_code == 200
    r = await client.get("/v1/next", params={"service": "openai", "token": token})
    check_answer(r, errors.DemoRateLimited(retry_after_s=int(r.headers["retry-after"])))


async def test_store_unavailable_answer(settings, clock):
    down = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1", redis_cluster=False)
    async with app_client(create_app(down, clock=clock)) as client:
        r = await client.get("/v1/next", params={"service": "s", "token": "krc_abc_x"})
        check_answer(r, errors.StoreUnavailable())
        assert r.headers["retry-after"] == "1"


def expected_body(**fields) -> bytes:
    return msgspec.json.encode(NextKey(**fields))


@pytest.mark.parametrize("path", ["/v1/next", "/keyrotator/api/next.php"])
@pytest.mark.parametrize("masked", [False, True])
async def test_200_is_msgspecs_encoding(client, redis, settings, path, masked):
    t, token = await seeded(redis, settings)
    params = {"service": "openai", "token": token, **({"mask": "true"} if masked else {})}
    for usage in (1, 2):
        r = await client.get(path, params=params)
        assert r.content == expected_body(
            service="openai", key_label="Primary", key=mask(SECRET) if masked else SECRET,
            masked=masked, policy="usage", limits=Limits(10000),
            meta=Meta(key_id=t.key_ids[0], usage_today=usage),
        )  # fmt: skip
        assert r.headers["ratelimit-policy"] == '"daily";q=10000;w=86400'
        assert r.headers["ratelimit"] == f'"daily";r={10000 - usage};t=43200'
        assert r.headers["content-length"] == str(len(r.content))
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_app_token_bearer_and_no_limits(client, redis, settings):
    t = await seed.tenant(redis)
    await seed.service(redis, t, "free", policy="manual")
    key_id = await seed.key(redis, settings.keyring, t, "free", "short-key", label='Quote " é')
    parsed = await seed.app(redis, t)
    minted = tokens.mint_app(t.tenant, parsed.app)
    await redis.hset(keys.app(t.tenant, parsed.app), "token", minted.secret_hash)
    r = await client.get(
        "/v1/next", params={"service": "free"}, headers={"Authorization": f"bearer {minted.token}"}
    )
    assert r.content == expected_body(
        service="free", key_label='Quote " é', key="short-key", masked=False, policy="manual",
        limits=Limits(None, None), meta=Meta(key_id=key_id, usage_today=1),
    )  # fmt: skip
    assert "ratelimit" not in r.headers and "ratelimit-policy" not in r.headers
    limited = await seed.app(redis, t, max_daily=5)
    minted = tokens.mint_app(t.tenant, limited.app)
    await redis.hset(keys.app(t.tenant, limited.app), "token", minted.secret_hash)
    r = await client.get("/v1/next", params={"service": "free", "app_token": minted.token})
    assert r.json()["limits"] == {"max_daily_requests": None, "app_max_daily_requests": 5}
    assert r.headers["ratelimit"] == '"daily";r=4;t=43200'


async def test_demo_masks_even_when_asked_not_to(client, redis, settings):
    _, token = await seeded(redis, settings, demo=True)
    r = await client.get("/v1/next", params={"service": "openai", "token": token, "mask": "0"})
    assert (r.json()["masked"], r.json()["key"]) == (True, mask(SECRET))


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("service=openai&service=nope&token={t}", 200),  # the first of a repeated parameter
        ("service=nope&service=openai&token={t}", 404),
        ("service=&service=openai&token={t}", 400),  # the first is empty: missing
        ("%73ervice=op%65nai&token={t}", 200),  # percent-encoded name and value
        ("service=open+ai&token={t}", 404),  # `+` is a space
        ("service=openai&token={t}&&;&=x&mask", 200),
        ("service=openai&token=&app_token=&token={t}", 400),  # empty token, empty app token
        ("service=openai&app_token=&token={t}", 200),  # an empty app_token falls back
        ("service=openai&token={t}%0A", 403),  # a trailing newline is not the token
        ("service=%ff&token={t}", 404),  # invalid UTF-8 is replaced, never a 500
        ("", 400),
    ],
)
async def test_odd_query_strings(client, redis, settings, query, status):
    _, token = await seeded(redis, settings)
    r = await client.get("/v1/next?" + query.replace("{t}", token))
    assert r.status_code == status, r.text

    r = await client.get(f"/v1/next?service=openai&token={token}&mask=1&mask=0")
    assert r.json()["masked"] is True


# --- request ids ---------------------------------------------------------------------------------


def behind_proxy(settings) -> Litestar:
    return dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))


async def test_every_answer_gets_a_new_request_id(client, redis, settings):
    _, token = await seeded(redis, settings)
    answers = [
        await client.get("/v1/next", params={"service": "openai", "token": token}),
        await client.get("/v1/next", params={"service": "openai", "token": token}),
        await client.get("/v1/next", params={"service": "nope", "token": token}),
        await client.get("/v1/next"),
        # from a peer that is not a trusted proxy, a client's id is not taken
        await client.get(
            "/v1/next",
            params={"service": "openai", "token": token},
            headers={"X-Request-ID": "client-chosen-id-123"},
        ),
    ]
    ids = [r.headers["x-request-id"].encode() for r in answers]
    assert all(MADE_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i.split(b"-")[0] for i in ids}) == 1  # one process, one prefix


async def test_a_trusted_proxys_request_id_is_kept_and_a_retry_counts_once(redis, settings, clock):
    _, token = await seeded(redis, settings)
    params = {"service": "openai", "token": token}
    async with app_client(create_app(behind_proxy(settings), clock=clock)) as client:
        rid = "0123456789abcdef0123456789abcdef"
        first = await client.get("/v1/next", params=params, headers={"X-Request-ID": rid})
        retry = await client.get("/v1/next", params=params, headers={"X-Request-ID": rid})
        assert first.headers["x-request-id"] == retry.headers["x-request-id"] == rid
        assert first.json()["meta"]["usage_today"] == retry.json()["meta"]["usage_today"] == 1
        # a refusal carries it too
        r = await client.get(
            "/v1/next", params={**params, "service": "nope"}, headers={"X-Request-ID": rid}
        )
        assert (r.status_code, r.headers["x-request-id"]) == (404, rid)
        # malformed (too short, bad characters, two lines): replaced by a made one
        for bad in (["short"], ["has space in it"], [rid, rid]):
            r = await client.get(
                "/v1/next", params=params, headers=[("X-Request-ID", v) for v in bad]
            )
            assert r.status_code == 200
            assert MADE_ID.fullmatch(r.headers["x-request-id"].encode())
        assert r.json()["meta"]["usage_today"] == 4  # each of those three counted


async def test_a_reused_request_id_is_no_way_around_a_limit_or_a_key_state(redis, settings, clock):
    """A retry's answer is its own caller's, and only while its key is usable."""
    async with app_client(create_app(behind_proxy(settings), clock=clock)) as client:
        t = await new_tenant(client)
        await new_service(client, t)
        first_key = (await new_key(client, t, label="first"))["id"]
        second_key = (await new_key(client, t, secret=SECRET + "-2", label="second"))["id"]
        app = await new_app(client, t, max_daily_requests=1)

        def get(token: str, rid: str) -> Any:
            return client.get(
                "/v1/next", params={"service": "openai", "token": token},
                headers={"X-Request-ID": rid},
            )  # fmt: skip

        # the app uses up its day; the tenant's client token then gets an id of its own
        assert (await get(app["app_token"], "app-request-00001")).status_code == 200
        r = await get(t.client_token, "tenant-request-0001")
        assert r.status_code == 200
        used = r.json()["meta"]["key_id"]
        # the app reusing the tenant token's id is a new delivery: refused at its limit
        r = await get(app["app_token"], "tenant-request-0001")
        assert (r.status_code, r.json()["limit"]) == (429, "app")
        # the same caller's retry: the same key, uncounted
        r = await get(t.client_token, "tenant-request-0001")
        assert (r.json()["meta"]["key_id"], r.json()["meta"]["usage_today"]) == (used, 1)
        # that key disabled: the retry is a new delivery, of the other key, counted
        r = await client.patch(
            f"/v1/services/openai/keys/{used}", json={"active": False}, headers=t.auth
        )
        assert r.status_code == 200
        r = await get(t.client_token, "tenant-request-0001")
        assert r.status_code == 200
        assert r.json()["meta"]["key_id"] == ({first_key, second_key} - {used}).pop()


async def test_several_forwarded_for_lines_from_a_trusted_proxy(redis, settings, clock):
    t = await seed.tenant(redis, allow=["10.1.2.0/24"])
    minted = tokens.mint_client(t.tenant)
    await redis.hset(keys.tenant(t.tenant), "client", minted.secret_hash)
    await seed.service(redis, t, "s", policy="usage")
    await seed.key(redis, settings.keyring, t, "s", "sk-xff-lines-000000000")
    params = {"service": "s", "token": minted.token}
    async with app_client(create_app(behind_proxy(settings), clock=clock)) as client:
        forged_then_real = [("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-For", "8.8.8.8")]
        real_last = [("X-Forwarded-For", "8.8.8.8"), ("X-Forwarded-For", "10.1.2.3")]
        assert (
            await client.get("/v1/next", params=params, headers=forged_then_real)
        ).status_code == 403
        assert (await client.get("/v1/next", params=params, headers=real_last)).status_code == 200
    async with app_client(create_app(settings, clock=clock)) as client:
        # not from a trusted proxy: the header is ignored, the peer (127.0.0.1) is the client
        assert (await client.get("/v1/next", params=params, headers=real_last)).status_code == 403


# --- methods, the OpenAPI entry, the unexpected --------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/next", "/keyrotator/api/next.php"])
async def test_other_methods_as_litestar_answers_them(client, path):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = await client.request(method, path)
        assert (r.status_code, r.content) == (405, b'{"error":"Method Not Allowed"}')
        assert set(r.headers["allow"].split(", ")) == {"GET", "OPTIONS"}
        assert PROXY_ID.fullmatch(r.headers["x-request-id"])
    r = await client.head(path)
    assert (r.status_code, r.content) == (405, b"")
    assert PROXY_ID.fullmatch(r.headers["x-request-id"])
    r = await client.options(path)
    assert (r.status_code, r.headers["allow"]) == (204, "GET, OPTIONS")
    # every answer on the delivery paths names its request, as the rest of the API's do
    assert PROXY_ID.fullmatch(r.headers["x-request-id"])


async def test_openapi_entry_is_the_routes(client):
    doc = (await client.get("/schema/openapi.json")).json()
    for path in ("/v1/next", "/keyrotator/api/next.php"):
        operation = doc["paths"][path]["get"]
        assert [p["name"] for p in operation["parameters"]] == [
            "service",
            "token",
            "app_token",
            "mask",
        ]
        assert set(operation["responses"]) == {"200", "400", "403", "404", "429", "500", "503"}


async def test_an_unexpected_error_is_a_counted_500_in_our_shape(
    redis, settings, clock, monkeypatch
):
    _, token = await seeded(redis, settings)
    app = create_app(settings, clock=clock)

    def broken(*args):
        raise RuntimeError("a bug")

    async with app_client(app) as client:
        monkeypatch.setattr(app.state.rotator.secrets, "body_prefix", broken)
        r = await client.get("/v1/next", params={"service": "openai", "token": token})
        assert (r.status_code, r.json()) == (500, {"error": "internal error"})
        assert app.state.rotator.tally.take() == {"HTTP 500": 1}


async def test_answers_are_counted_for_the_summary(redis, settings, clock):
    _, token = await seeded(redis, settings)
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        for service in ("openai", "openai", "nope"):
            await client.get("/v1/next", params={"service": service, "token": token})
        await client.get("/v1/next")
        assert app.state.rotator.tally.take() == {
            "ok": 2, "unknown service": 1, "missing token or service": 1
        }  # fmt: skip


# --- the decrypted-key cache ---------------------------------------------------------------------


async def test_a_changed_ciphertext_is_never_served_stale(redis, settings, clock):
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        t = await new_tenant(client)
        await new_service(client, t, policy="manual")
        key = await new_key(client, t, secret="sk-first-secret-0000000")
        get = lambda: client.get("/v1/next", params={"service": "openai", "token": t.client_token})  # noqa: E731
        assert (await get()).json()["key"] == "sk-first-secret-0000000"
        assert (await get()).json()["key"] == "sk-first-secret-0000000"  # from the cache
        # the store's secret changes under the same key id (a restore, an import over it)
        blob = settings.keyring.seal(
            b"sk-second-secret-000000", aad_for_key(t.id, "openai", key["id"])
        )
        await redis.hset(keys.service(t.id, "openai"), f"c:{key['id']}", blob)
        assert (await get()).json()["key"] == "sk-second-secret-000000"
        assert not app.state.rotator.secrets.holds("sk-first-secret-0000000")
        # a label renamed: the cached body prefix follows
        path = f"/v1/services/openai/keys/{key['id']}"
        assert (
            await client.patch(path, json={"label": "Renamed"}, headers=t.auth)
        ).status_code == 200
        assert (await get()).json()["key_label"] == "Renamed"


async def test_a_rewrapped_key_is_opened_again(redis, settings, clock):
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        t = await new_tenant(client)
        await new_service(client, t, policy="manual")
        key = await new_key(client, t, secret="sk-rewrapped-0000000000")
        params = {"service": "openai", "token": t.client_token}
        assert (await client.get("/v1/next", params=params)).json()[
            "key"
        ] == "sk-rewrapped-0000000000"
        svc = keys.service(t.id, "openai")
        before = await redis.hget(svc, f"c:{key['id']}")
        # what a rewrap writes: the same secret sealed afresh
        blob = settings.keyring.seal(
            b"sk-rewrapped-0000000000", aad_for_key(t.id, "openai", key["id"])
        )
        await redis.hset(svc, f"c:{key['id']}", blob)
        assert blob != before
        assert (await client.get("/v1/next", params=params)).json()[
            "key"
        ] == "sk-rewrapped-0000000000"
        # opened once for the first ciphertext, once for the new one, then served cached
        assert app.state.rotator.secrets.decrypted == 2
        assert (await client.get("/v1/next", params=params)).json()[
            "key"
        ] == "sk-rewrapped-0000000000"
        assert app.state.rotator.secrets.decrypted == 2


async def test_a_deleted_keys_plaintext_leaves_the_cache(redis, settings, clock):
    app = create_app(settings, clock=clock)
    cache = app.state.rotator.secrets
    async with app_client(app) as client:
        t = await new_tenant(client)
        await new_service(client, t, policy="manual")
        first = await new_key(client, t, secret="sk-deleted-soon-00000000")
        await new_key(client, t, secret="sk-stays-here-000000000")
        params = {"service": "openai", "token": t.client_token}
        assert (await client.get("/v1/next", params=params)).json()[
            "key"
        ] == "sk-deleted-soon-00000000"
        assert cache.holds("sk-deleted-soon-00000000")
        path = f"/v1/services/openai/keys/{first['id']}"
        assert (await client.delete(path, headers=t.auth)).status_code == 204
        # the next delivery of the service reports its new key ids: the deleted key goes
        assert (await client.get("/v1/next", params=params)).json()[
            "key"
        ] == "sk-stays-here-000000000"
        assert not cache.holds("sk-deleted-soon-00000000")
        assert cache.holds("sk-stays-here-000000000") and len(cache) == 1
