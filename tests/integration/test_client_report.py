"""rotator.client's reports against a real API process: `POST /v1/report` (SPEC §7) and
`call` closing the loop. Needs the report route (issue #15 items 1-2, another branch):
until it is merged, every test here fails with the route's 404."""

from __future__ import annotations

import httpx
import pytest

from rotator import client as kr
from tests.integration import client_live
from tests.integration.client_live import SECRETS, live_api, live_env


@pytest.fixture(scope="module")
def base(valkey, master_key_b64):
    with live_api(live_env(valkey.url, master_key_b64)) as url:
        yield url


class RateLimited(Exception):
    """A provider's 429, shaped like the OpenAI SDK's RateLimitError."""

    status_code = 429

    def __init__(self) -> None:
        super().__init__("rate limited")
        self.response = httpx.Response(429, headers={"retry-after": "600"})
        self.body = {"code": "rate_limit_exceeded"}


async def test_a_429_report_cools_the_key_down(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    with kr.Client(base, t.client_token) as rotator:
        cooled = rotator.next_key("openai")
        result = rotator.report("openai", cooled.key_id, 429, retry_after_s=600)
        assert result.state == "cooling_down" and result.cooldown_until
        delivered = {rotator.next_key("openai").key_id for _ in range(5)}
    assert cooled.key_id not in delivered


async def test_a_401_report_disables_the_key(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    async with kr.AsyncClient(base, t.client_token) as rotator:
        key = await rotator.next_key("openai")
        result = await rotator.report("openai", key.key_id, 401, error="invalid_api_key")
    assert result.state == "disabled" and result.cooldown_until is None


async def test_reports_with_an_app_token_and_of_success(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    token = await client_live.app_token(redis, t)
    with kr.Client(base, token) as rotator:
        key = rotator.next_key("openai")
        assert rotator.report("openai", key.key_id, 200).state == "active"


async def test_a_timeout_report_is_accepted(base, redis, settings):
    t = await client_live.tenant(redis, settings)
    with kr.Client(base, t.client_token) as rotator:
        key = rotator.next_key("openai")
        # what call() sends when the provider did not answer (rotator/client/outcome.py)
        assert rotator.report("openai", key.key_id, 0, error="timeout").state == "active"


async def test_a_key_the_token_cannot_fetch_is_unknown(base, redis, settings):
    # key ids count per tenant, so another tenant's key 1 is this tenant's key 1: a key the
    # token cannot fetch is an id its own service does not have
    t = await client_live.tenant(redis, settings)
    with kr.Client(base, t.client_token) as rotator, pytest.raises(kr.UnknownKey) as caught:
        rotator.report("openai", max(t.key_ids) + 1, 429)
    assert caught.value.status == 404


async def test_call_reports_a_429_and_succeeds_with_the_other_key(base, redis, settings, caplog):
    t = await client_live.tenant(redis, settings)
    used: list[str] = []

    def provider(key: str) -> str:
        used.append(key)
        if len(used) == 1:
            raise RateLimited()
        return "answer"

    with kr.Client(base, t.client_token) as rotator:
        assert rotator.call("openai", provider) == "answer"
        assert "not recorded" not in caplog.text  # the report was accepted
        assert set(used) == set(SECRETS)
        # the first key cools for the provider's Retry-After: only the other one comes now
        assert {rotator.next_key("openai").key for _ in range(4)} == {used[1]}
