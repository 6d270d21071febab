"""Every row of the error table becomes its own exception class, with status, message, body
and Retry-After; an answer outside the table raises UnexpectedAnswer, never a KeyError."""

from __future__ import annotations

import httpx
import pytest

from rotator import client as kr
from tests.unit.client_support import BASE, TOKEN


def answering(response: httpx.Response) -> kr.Client:
    return kr.Client(BASE, TOKEN, transport=httpx.MockTransport(lambda request: response))


def refusal(response: httpx.Response, cls: type[kr.RotatorError]) -> kr.RotatorError:
    """What next_key raises on `response`, checked to be a `cls`."""
    with answering(response) as rotator, pytest.raises(cls) as caught:
        rotator.next_key("openai")
    return caught.value


TABLE = [
    (400, {"error": "missing token or service"}, {}, kr.MissingParams),
    (403, {"error": "invalid token"}, {}, kr.InvalidToken),
    (403, {"error": "ip not allowed"}, {}, kr.IpNotAllowed),
    (404, {"error": "unknown service"}, {}, kr.UnknownService),
    (404, {"error": "not found"}, {}, kr.NotFound),
    (429, {"error": "demo rate limit"}, {"Retry-After": "7"}, kr.DemoRateLimited),
    (500, {"error": "key decrypt failed"}, {}, kr.KeyDecryptFailed),
    (500, {"error": "internal error"}, {}, kr.ServerError),
    (503, {"error": "no active keys"}, {}, kr.NoActiveKeys),
    (503, {"error": "store unavailable"}, {"Retry-After": "1"}, kr.StoreUnavailable),
    (400, {"error": "status: expected int", "field": "status"}, {}, kr.InvalidRequest),
]


@pytest.mark.parametrize(("status", "body", "headers", "cls"), TABLE)
def test_each_documented_error_has_its_class(status, body, headers, cls):
    err = refusal(httpx.Response(status, json=body, headers=headers), cls)
    assert type(err) is cls and isinstance(err, kr.RotatorError)
    assert (err.status, err.message, err.body) == (status, body["error"], body)
    assert err.retry_after_s == (int(headers["Retry-After"]) if headers else None)
    assert str(err) == f"{body['error']} (HTTP {status})"


def test_daily_limit_carries_which_limit_and_when():
    body = {"error": "service daily limit reached", "limit": "app", "retry_after": 3600}
    err = refusal(httpx.Response(429, json=body, headers={"Retry-After": "3600"}),
                  kr.DailyLimitReached)  # fmt: skip
    assert (err.limit, err.retry_after_s) == ("app", 3600)
    assert isinstance(err, kr.LimitReached)


def test_rate_limit_per_minute():
    body = {"error": "rate limit reached", "limit": "key", "retry_after": 12}
    err = refusal(httpx.Response(429, json=body, headers={"Retry-After": "12"}),
                  kr.RateLimitReached)  # fmt: skip
    assert (err.limit, err.retry_after_s) == ("key", 12)


def test_no_active_keys_while_every_key_cools_says_when():
    answer = httpx.Response(503, json={"error": "no active keys"}, headers={"Retry-After": "42"})
    with answering(answer) as rotator, pytest.raises(kr.NoActiveKeys) as caught:
        rotator.next_key("openai")
    assert caught.value.retry_after_s == 42


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"}),
        httpx.Response(418, json={"error": "teapot"}),
        httpx.Response(500, json=["not", "an", "object"]),
        httpx.Response(403, json={"error": 12}),
        httpx.Response(200, json={"service": "openai"}),
        httpx.Response(200, json={"unexpected": True, "meta": None}),
        httpx.Response(200, text="not json"),
    ],
)
def test_an_answer_outside_the_table_is_a_clear_error(response):
    with answering(response) as rotator, pytest.raises(kr.UnexpectedAnswer) as caught:
        rotator.next_key("openai")
    assert caught.value.status == response.status_code
    assert "unexpected answer" in caught.value.message


def test_a_200_of_the_wrong_shape_names_the_field_not_the_value():
    body = {"service": "openai", "key_label": "k", "key": "sk-SECRET", "masked": False,
            "policy": "usage", "limits": {},
            "meta": {"key_id": "sk-OTHER", "usage_today": 1}}  # fmt: skip
    err = refusal(httpx.Response(200, json=body), kr.UnexpectedAnswer)
    assert "$.meta.key_id" in str(err)
    assert "SECRET" not in str(err) and "OTHER" not in str(err)


def test_no_answer_is_unreachable_with_the_cause_chained():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(refuse)
    with (
        kr.Client(BASE, TOKEN, transport=transport) as rotator,
        pytest.raises(kr.Unreachable) as caught,
    ):
        rotator.next_key("openai")
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_report_of_a_key_the_token_cannot_fetch():
    answer = httpx.Response(404, json={"error": "unknown key"})
    with answering(answer) as rotator, pytest.raises(kr.UnknownKey) as caught:
        rotator.report("openai", 99, 429)
    assert isinstance(caught.value, kr.NotFound) and caught.value.status == 404


async def test_the_async_client_raises_the_same_classes():
    answer = httpx.Response(403, json={"error": "ip not allowed"})
    transport = httpx.MockTransport(lambda request: answer)
    async with kr.AsyncClient(BASE, TOKEN, transport=transport) as rotator:
        with pytest.raises(kr.IpNotAllowed):
            await rotator.next_key("openai")
