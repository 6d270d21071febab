"""The client's requests and its `call` helper, against a fake rotator (MockTransport) and
fake provider calls: sync and async run the same scenarios."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from rotator import client as kr
from tests.unit.client_support import BASE, TOKEN, FakeRotator, ProviderError, delivery


@pytest.fixture
def rotator():
    return FakeRotator()


def sync_client(fake: FakeRotator, **kw) -> kr.Client:
    return kr.Client(BASE, TOKEN, transport=fake.transport(), **kw)


def test_next_key_sends_the_token_as_bearer_and_reads_the_record(rotator):
    with sync_client(rotator) as c:
        key = c.next_key("openai")
        c.next_key("openai", mask=True)
    assert (key.key, key.key_id, key.meta.usage_today) == ("sk-key-1", 1, 1)
    assert key.limits == kr.KeyLimits(max_daily_requests=10000)
    first, masked = rotator.requests
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(first.url)
    assert dict(first.url.params) == {"service": "openai"}
    assert dict(masked.url.params) == {"service": "openai", "mask": "1"}


def test_report_sends_the_spec_body(rotator):
    with sync_client(rotator) as c:
        done = c.report("openai", 2, 429, retry_after_s=30, error="rate_limit_exceeded")
        c.report("openai", 3, 200)
    assert done == kr.ReportResult(state="cooling_down", cooldown_until=None)
    assert rotator.reports == [
        {"service": "openai", "key_id": 2, "status": 429, "retry_after": 30,
         "error": "rate_limit_exceeded"},
        {"service": "openai", "key_id": 3, "status": 200},
    ]  # fmt: skip
    assert rotator.requests[0].headers["content-type"] == "application/json"


def test_neither_token_nor_key_shows_in_reprs(rotator):
    with sync_client(rotator) as c:
        key = c.next_key("openai")
        shown = repr(c) + str(c) + repr(key) + str(key) + repr([key])
    assert TOKEN not in shown and "sk-key-1" not in shown and "<hidden>" in shown


def test_a_token_is_required():
    with pytest.raises(ValueError, match="token"):
        kr.Client(BASE, "  ")


@pytest.mark.parametrize("token", ["tök-ünïcode-token-xxxxxxxxxxxxxx", "krc_abc\ndef-ghijklmnop"])
def test_a_token_no_header_can_carry_is_refused_without_showing_it(token):
    with pytest.raises(ValueError) as refused:
        kr.Client(BASE, token)
    assert str(refused.value) == "token: holds characters no token has (outside printable ASCII)"
    assert token not in repr(refused.value) + repr(refused.value.args)


# --- call: the same scenarios, sync and async ---------------------------------------------


class Provider:
    """A fake provider call: answers from a script, one per call; records the keys used."""

    def __init__(self, *script):
        self.script = list(script)
        self.keys: list[str] = []

    def __call__(self, key: str):
        self.keys.append(key)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def coro(self, key: str):
        return self(key)


@pytest.fixture(params=["sync", "async"])
def run(request, rotator):
    """run(provider, **call_kw) -> result, through the sync or the async client."""

    async def go(provider: Provider, client_kw=None, **kw):
        if request.param == "sync":
            with kr.Client(BASE, TOKEN, transport=rotator.transport(), **(client_kw or {})) as c:
                return c.call("openai", provider, **kw)
        transport = rotator.transport()
        async with kr.AsyncClient(BASE, TOKEN, transport=transport, **(client_kw or {})) as c:
            return await c.call("openai", provider.coro, **kw)

    return go


async def test_429_is_reported_then_another_key_succeeds(run, rotator):
    provider = Provider(ProviderError(429, {"retry-after": "20"}, {"code": "rate_limit_exceeded"}),
                        "answer")  # fmt: skip
    assert await run(provider) == "answer"
    assert provider.keys == ["sk-key-1", "sk-key-2"]
    assert rotator.reports == [
        {"service": "openai", "key_id": 1, "status": 429, "retry_after": 20,
         "error": "rate_limit_exceeded"}
    ]  # fmt: skip


async def test_401_is_reported_and_another_key_tried(run, rotator):
    provider = Provider(ProviderError(401), "answer")
    assert await run(provider) == "answer"
    assert [r["status"] for r in rotator.reports] == [401]
    assert provider.keys == ["sk-key-1", "sk-key-2"]


async def test_exhausted_attempts_raise_the_last_provider_error(run, rotator):
    last = ProviderError(503)
    provider = Provider(ProviderError(500), ProviderError(429), last)
    with pytest.raises(ProviderError) as caught:
        await run(provider, attempts=3)
    assert caught.value is last
    assert [r["status"] for r in rotator.reports] == [500, 429, 503]
    assert [r["key_id"] for r in rotator.reports] == [1, 2, 3]


async def test_a_non_retryable_provider_error_is_reported_and_raised_at_once(run, rotator):
    bad = ProviderError(400, body={"error": {"type": "invalid_request_error", "message": "x"}})
    provider = Provider(bad, "never")
    with pytest.raises(ProviderError) as caught:
        await run(provider)
    assert caught.value is bad and provider.keys == ["sk-key-1"]
    assert rotator.reports == [
        {"service": "openai", "key_id": 1, "status": 400, "error": "invalid_request_error"}
    ]


async def test_an_exception_that_is_no_provider_answer_propagates_unreported(run, rotator):
    provider = Provider(KeyError("bug in the caller"), "never")
    with pytest.raises(KeyError):
        await run(provider)
    assert rotator.reports == [] and provider.keys == ["sk-key-1"]


async def test_a_timeout_is_reported_as_no_answer_and_retried(run, rotator):
    provider = Provider(httpx.ReadTimeout("slow"), TimeoutError(), "answer")
    assert await run(provider) == "answer"
    assert rotator.reports == [
        {"service": "openai", "key_id": 1, "status": 0, "error": "timeout"},
        {"service": "openai", "key_id": 2, "status": 0, "error": "timeout"},
    ]


async def test_success_is_reported_only_when_asked(run, rotator):
    assert await run(Provider("a")) == "a"
    assert rotator.reports == []
    assert await run(Provider("b"), client_kw={"report_success": True}) == "b"
    assert await run(Provider("c"), report_success=True) == "c"
    assert [r["status"] for r in rotator.reports] == [200, 200]
    assert await run(Provider("d"), client_kw={"report_success": True}, report_success=False)
    assert len(rotator.reports) == 2


async def test_a_returned_failed_response_is_retried_and_returned_last(run, rotator):
    first = httpx.Response(429, headers={"Retry-After": "5"})
    second = httpx.Response(404, json={"error": {"type": "not_found_error"}})
    result = await run(Provider(first, second, "never"))
    assert result is second
    assert rotator.reports == [
        {"service": "openai", "key_id": 1, "status": 429, "retry_after": 5},
        {"service": "openai", "key_id": 2, "status": 404, "error": "not_found_error"},
    ]
    ok = httpx.Response(201)
    assert await run(Provider(ok), report_success=True) is ok
    assert rotator.reports[-1]["status"] == 201


async def test_a_failed_report_never_hides_the_provider_answer(run, rotator, caplog):
    rotator.report_status = 503
    provider = Provider(ProviderError(429), "answer")
    with caplog.at_level(logging.WARNING, logger="rotator.client"):
        assert await run(provider) == "answer"
    assert len(rotator.reports) == 1
    assert "not recorded: store unavailable" in caplog.text
    assert TOKEN not in caplog.text and "sk-key" not in caplog.text


async def test_when_the_rotator_has_no_other_key_the_provider_error_says_so(run, rotator):
    rotator.answers = [
        httpx.Response(200, json=delivery(1, "sk-key-1")),
        httpx.Response(503, json={"error": "no active keys"}, headers={"Retry-After": "20"}),
    ]
    quota = ProviderError(429, body={"error": {"code": "insufficient_quota"}})
    with pytest.raises(ProviderError) as caught:
        await run(Provider(quota, "never"))
    assert caught.value is quota
    assert any("no active keys" in note for note in caught.value.__notes__)
    assert rotator.reports[0]["error"] == "insufficient_quota"


async def test_a_refusal_before_any_attempt_is_the_rotators_error(run, rotator):
    rotator.answers = [httpx.Response(404, json={"error": "unknown service"})]
    provider = Provider("never")
    with pytest.raises(kr.UnknownService):
        await run(provider)
    assert provider.keys == []


async def test_attempts_must_be_positive(run):
    with pytest.raises(ValueError, match="attempts"):
        await run(Provider("x"), attempts=0)


def test_report_body_is_compact_json(rotator):
    with sync_client(rotator) as c:
        c.report("openai", 1, 503)
    assert json.loads(rotator.requests[0].content) == {
        "service": "openai", "key_id": 1, "status": 503}  # fmt: skip
