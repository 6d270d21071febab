"""The delivery route's answer table agrees with the domain errors and the app's error table.

A refusal of next_key.lua is answered over HTTP from api/delivery_answers.py (bytes built
once) and raised as a domain error by DeliveryStore.next_key for every other caller; both
must say the same thing, byte for byte, for every status the script returns.
"""

from __future__ import annotations

import pytest

from rotator.api import delivery_answers as answers
from rotator.api.errors import rotator_error
from rotator.domain import errors
from rotator.store.delivery import _REJECTIONS, refusal_error
from rotator.store.scripts.delivery import Refused

NOON_MS = 1_764_676_800_000  # 2025-12-02 12:00 UTC: half a day to the next
SAMPLES = {
    "token": [Refused("token")],
    "ip": [Refused("ip")],
    "service": [Refused("service")],
    "nokeys": [Refused("nokeys")],
    "throttle": [Refused("throttle", 1), Refused("throttle", 1000), Refused("throttle", 2500)],
    "limit": [Refused("limit", which, NOON_MS) for which in (b"service", b"app", b"key")],
    "cooling": [Refused("cooling", 1, NOON_MS), Refused("cooling", 30_500, NOON_MS)],
    "rate": [
        Refused("rate", which, wait_ms)
        for which in (b"service", b"key")
        for wait_ms in (1, 1000, 59_001)
    ],
}


def table_answer(exc: errors.RotatorError) -> tuple[int, bytes, set[tuple[bytes, bytes]]]:
    response = rotator_error(None, exc)  # type: ignore[arg-type]
    body = response.render(response.content, "application/json")
    headers = {(k.lower().encode(), v.encode()) for k, v in response.headers.items()}
    return response.status_code, body, headers | {(b"content-type", b"application/json")}


def rendered(answer: answers.Answer, refused: Refused) -> tuple[int, bytes, set]:
    status, headers, body = answer.render(refused.detail, refused.now_ms)
    as_set = set(headers)
    assert (b"content-length", b"%d" % len(body)) in as_set
    return status, body, as_set - {(b"content-length", b"%d" % len(body))}


def test_every_status_of_the_script_has_an_answer_and_an_error():
    assert (
        set(answers.REFUSALS)
        == set(SAMPLES)
        == {*_REJECTIONS, "throttle", "limit", "rate", "cooling"}
    )


@pytest.mark.parametrize("refused", [r for samples in SAMPLES.values() for r in samples], ids=repr)
def test_each_refusal_is_answered_as_its_domain_error(refused: Refused):
    assert rendered(answers.REFUSALS[refused.status], refused) == table_answer(
        refusal_error(refused)
    )


@pytest.mark.parametrize(
    ("answer", "exc"),
    [
        (answers.MISSING_PARAMS, errors.MissingParams()),
        (answers.DECRYPT_FAILED, errors.KeyDecryptFailed()),
        (answers.STORE_UNAVAILABLE, errors.StoreUnavailable()),
    ],
)
def test_the_handlers_own_answers_are_the_error_tables(answer, exc):
    assert rendered(answer, Refused("")) == table_answer(exc)


def test_waits_round_up_to_whole_seconds():
    throttle = answers.REFUSALS["throttle"]
    assert [throttle.render(ms, 0)[1][2] for ms in (1, 1000, 1001)] == [
        (b"retry-after", b"1"), (b"retry-after", b"1"), (b"retry-after", b"2"),
    ]  # fmt: skip
    body = answers.REFUSALS["limit"].render(b"app", NOON_MS)[2]
    assert body == b'{"error":"service daily limit reached","limit":"app","retry_after":43200}'
