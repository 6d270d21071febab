"""rotator.client against a real API process over a real socket: deliveries, both token
kinds, masking, the error classes the server gives today, connection reuse.

The tests are coroutines for the async fixtures that seed the store; the sync client's
blocking calls are fine in them, the server being another process."""

from __future__ import annotations

import base64
import os

import pytest

from rotator import client as kr
from rotator.crypto import KeyRing
from rotator.domain.masking import BULLET
from rotator.embedded import EmbeddedValkey, free_port
from tests.integration import client_live
from tests.integration.client_live import SECRETS, live_api, live_env
from tests.lua import seed


@pytest.fixture(scope="module")
def base(valkey, master_key_b64):
    with live_api(live_env(valkey.url, master_key_b64)) as url:
        yield url


async def test_next_key_with_a_client_token(base, redis, settings):
    t = await client_live.tenant(redis, settings, max_daily=100)
    with kr.Client(base, t.client_token) as rotator:
        first, second = rotator.next_key("openai"), rotator.next_key("openai")
    assert {first.key, second.key} == set(SECRETS)  # usage policy: least used first
    assert {first.key_id, second.key_id} == set(t.key_ids)
    assert (first.service, first.policy, first.masked) == ("openai", "usage", False)
    assert first.limits == kr.KeyLimits(max_daily_requests=100)
    assert first.meta.usage_today == 1


async def test_next_key_with_an_app_token_and_masked(base, redis, settings):
    t = await client_live.tenant(redis, settings, keys_n=1)
    token = await client_live.app_token(redis, t, max_daily=50)
    with kr.Client(base, token) as rotator:
        key = rotator.next_key("openai", mask=True)
    assert key.masked and key.key == "sk-proj-" + BULLET * (len(SECRETS[0]) - 12) + "0001"
    assert key.limits == kr.KeyLimits(max_daily_requests=None, app_max_daily_requests=50)


async def test_async_client(base, redis, settings):
    t = await client_live.tenant(redis, settings, keys_n=1)
    async with kr.AsyncClient(base, t.client_token) as rotator:
        key = await rotator.next_key("openai")
        with pytest.raises(kr.UnknownService):
            await rotator.next_key("anthropic")
    assert key.key == SECRETS[0]


async def test_call_passes_the_key_and_returns_the_answer(base, redis, settings):
    t = await client_live.tenant(redis, settings, keys_n=1)
    with kr.Client(base, t.client_token) as rotator:
        assert rotator.call("openai", lambda key: f"used {key}") == f"used {SECRETS[0]}"


# --- the error table, as the server answers today ---------------------------------------


async def refused(base: str, token: str, cls: type[kr.RotatorError], service="openai"):
    """The error next_key raises, checked on both clients."""
    with kr.Client(base, token) as rotator, pytest.raises(cls) as caught:
        rotator.next_key(service)
    async with kr.AsyncClient(base, token) as rotator:
        with pytest.raises(cls):
            await rotator.next_key(service)
    assert type(caught.value) is cls
    return caught.value


async def test_missing_params(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    err = await refused(base, t.client_token, kr.MissingParams, service="")
    assert (err.status, err.message) == (400, "missing token or service")


async def test_invalid_token(base):
    err = await refused(base, "krc_0123456789abcdef_notatokennotatoken", kr.InvalidToken)
    assert (err.status, err.body) == (403, {"error": "invalid token"})
    assert "notatoken" not in str(err)


async def test_ip_not_allowed(base, redis, settings):
    t = await client_live.tenant(redis, settings, allow=["10.0.0.0/8"])
    err = await refused(base, t.client_token, kr.IpNotAllowed)
    assert err.status == 403


async def test_unknown_service(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    err = await refused(base, t.client_token, kr.UnknownService, service="stripe")
    assert err.status == 404


async def test_daily_limit_reached(base, redis, settings):
    t = await client_live.tenant(redis, settings, max_daily=1)
    with kr.Client(base, t.client_token) as rotator:
        rotator.next_key("openai")
        with pytest.raises(kr.DailyLimitReached) as caught:
            rotator.next_key("openai")
    err = caught.value
    assert (err.status, err.limit) == (429, "service")
    assert 0 < err.retry_after_s <= 86_400 and err.body["retry_after"] == err.retry_after_s


async def test_an_apps_daily_limit(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    token = await client_live.app_token(redis, t, max_daily=1)
    async with kr.AsyncClient(base, token) as rotator:
        await rotator.next_key("openai")
        with pytest.raises(kr.DailyLimitReached) as caught:
            await rotator.next_key("openai")
    assert caught.value.limit == "app"


async def test_demo_rate_limit(base, redis, settings):
    t = await client_live.tenant(redis, settings, demo=True)
    with kr.Client(base, t.client_token) as rotator:
        for _ in range(client_live.DEMO_BURST):
            assert rotator.next_key("openai").masked  # a demo tenant always masks
        with pytest.raises(kr.DemoRateLimited) as caught:
            rotator.next_key("openai")
    assert caught.value.status == 429 and caught.value.retry_after_s >= 1


async def test_no_active_keys(base, redis, settings):
    t = await client_live.tenant(redis, settings, keys_n=0)
    err = await refused(base, t.client_token, kr.NoActiveKeys)
    assert err.status == 503 and err.retry_after_s is None


async def test_key_decrypt_failed(base, redis, settings):
    t = await client_live.tenant(redis, settings, keys_n=0)
    other = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    await seed.key(redis, other, t.seeded, "openai", "sk-sealed-with-another-master-key")
    err = await refused(base, t.client_token, kr.KeyDecryptFailed)
    assert err.status == 500


def test_store_unavailable(tmp_path, master_key_b64):
    store = EmbeddedValkey(tmp_path, appendonly=False)
    store.start()
    try:
        with live_api(live_env(store.url, master_key_b64)) as url:
            store.stop()  # the API is up; its store goes away
            rotator = kr.Client(url, "krc_0123456789abcdef_anytokenanytoken")
            with rotator, pytest.raises(kr.StoreUnavailable) as caught:
                rotator.next_key("openai")
    finally:
        store.stop()
    assert caught.value.status == 503 and caught.value.retry_after_s == 1


def test_unreachable():
    rotator = kr.Client(f"http://127.0.0.1:{free_port()}", "krc_x_y")
    with rotator, pytest.raises(kr.Unreachable) as caught:
        rotator.next_key("openai")
    assert caught.value.status is None


# --- one connection pool per client -----------------------------------------------------


async def test_one_connection_for_many_calls(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    transport = client_live.CountingTransport()
    with kr.Client(base, t.client_token, transport=transport) as rotator:
        for _ in range(20):
            rotator.next_key("openai")
        with pytest.raises(kr.UnknownService):  # an error answer keeps the connection too
            rotator.next_key("nope")
        rotator.next_key("openai")
    assert transport.connections == 1


async def test_one_connection_for_many_async_calls(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    transport = client_live.AsyncCountingTransport()
    async with kr.AsyncClient(base, t.client_token, transport=transport) as rotator:
        for _ in range(20):
            await rotator.next_key("openai")
    assert transport.connections == 1
