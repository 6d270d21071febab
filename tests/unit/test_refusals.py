"""Which error replies are the store refusing to serve (503, exit 2, a deferral) and which
are a bug of ours (500, loud): rotator/store/refusals.py."""

from __future__ import annotations

import pytest
from redis.exceptions import OutOfMemoryError, ResponseError, TryAgainError

from rotator.store import refusals

PIPELINE = "Command # 1 (HSET {{t:x}}:app:1 name {label}) of pipeline caused error: {reply}"


def pipeline(label: str, reply: str) -> ResponseError:
    return ResponseError(PIPELINE.format(label=label, reply=reply))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ResponseError("BUSY Redis is busy running a script."), "BUSY"),
        (ResponseError("MISCONF Errors writing to the AOF file"), "MISCONF"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "OOM"),
        (TryAgainError("Multiple keys request during rehashing of slot"), "TRYAGAIN"),
        (pipeline("web", "READONLY You can't write against a read only replica."), "READONLY"),
        # a bug stays a bug, whatever a pipeline's arguments (a user's label) say
        (pipeline("of pipeline caused error: OOM", "WRONGTYPE Operation against a key"), None),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), None),
        (ResponseError("NOSCRIPT No matching script"), None),
        (ResponseError("ERR wrong number of arguments for 'hmget' command"), None),
        (ConnectionError("refused"), None),
    ],
)  # fmt: skip
def test_the_code_of_a_refusal_and_none_for_a_bug(exc, code):
    assert refusals.code_of(exc) == code
