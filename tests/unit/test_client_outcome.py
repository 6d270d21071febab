"""`classify`: the provider's status, Retry-After and error type, read by duck typing from
what httpx and the OpenAI and Anthropic SDKs raise (shaped here as those SDKs shape them,
without installing them)."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from rotator.client import ProviderOutcome, classify
from rotator.client.outcome import retry_after_s

REQUEST = httpx.Request("POST", "https://api.example/v1/chat")


class APIStatusError(Exception):
    """As openai-python and anthropic-python build theirs: status_code, response, body;
    OpenAI's also has code and type (from the inner error object it keeps as body)."""

    def __init__(self, status, *, headers=None, body=None, code=None, type=None):
        super().__init__(f"Error code: {status}")
        self.status_code = status
        self.response = httpx.Response(status, headers=headers or {}, request=REQUEST)
        self.body = body
        if code is not None or type is not None:
            self.code, self.type = code, type


class APIConnectionError(Exception): ...


class APITimeoutError(APIConnectionError): ...


def test_openai_quota_error():
    exc = APIStatusError(
        429,
        headers={"retry-after-ms": "1500", "retry-after": "2"},
        body={"message": "You exceeded your quota", "type": "insufficient_quota",
              "code": "insufficient_quota"},
        code="insufficient_quota",
        type="insufficient_quota",
    )  # fmt: skip
    assert classify(exc) == ProviderOutcome(status=429, retry_after_s=2, error="insufficient_quota")


def test_openai_rate_limit_prefers_the_code_to_the_type():
    exc = APIStatusError(429, headers={"retry-after": "7"}, code="rate_limit_exceeded",
                         type="requests")  # fmt: skip
    assert classify(exc) == ProviderOutcome(
        status=429, retry_after_s=7, error="rate_limit_exceeded"
    )


def test_anthropic_error_body():
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    exc = APIStatusError(429, headers={"retry-after": "30"}, body=body)
    assert classify(exc) == ProviderOutcome(status=429, retry_after_s=30, error="rate_limit_error")
    overloaded = APIStatusError(529, body={"type": "error", "error": {"type": "overloaded_error"}})
    assert classify(overloaded).retryable


def test_httpx_status_error_reads_the_response_body():
    response = httpx.Response(
        401, json={"error": {"type": "authentication_error", "message": "bad key sk-…"}},
        request=REQUEST,
    )  # fmt: skip
    exc = httpx.HTTPStatusError("401", request=REQUEST, response=response)
    assert classify(exc) == ProviderOutcome(status=401, error="authentication_error")


def test_a_message_is_never_taken_for_an_error_type():
    exc = APIStatusError(400, body={"error": {"message": "key sk-abc is bad", "type": "a b"}})
    assert classify(exc) == ProviderOutcome(status=400)


@pytest.mark.parametrize(
    "exc", [APITimeoutError(), TimeoutError(), httpx.ConnectTimeout("x"), httpx.ReadTimeout("x")]
)
def test_timeouts(exc):
    outcome = classify(exc)
    assert outcome == ProviderOutcome(status=None, error="timeout")
    assert outcome.retryable and outcome.failed


@pytest.mark.parametrize("answer", [APIConnectionError(), ValueError("x"), "text", None, {}])
def test_not_a_provider_answer(answer):
    assert classify(answer) is None


def test_a_returned_response_is_classified_too():
    assert classify(httpx.Response(200)) == ProviderOutcome(status=200)
    assert classify(httpx.Response(503, headers={"Retry-After": "3"})) == ProviderOutcome(
        status=503, retry_after_s=3
    )


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, True), (403, True), (404, False), (422, False), (429, True),
     (500, True), (503, True), (529, True)],
)  # fmt: skip
def test_which_failures_another_key_may_fix(status, retryable):
    assert ProviderOutcome(status=status).retryable is retryable


def test_retry_after_forms():
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert retry_after_s({"Retry-After": date}, now_s=now) == 90
    assert retry_after_s({"retry-after": "0.2"}) == 1
    assert retry_after_s({"retry-after-ms": "2001"}) == 3
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after": "-5"}) is None
    assert retry_after_s({}) is None
