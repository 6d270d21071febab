"""The rotation as listings read it (rotator/domain/rotation.py), and the text form of many keys
(rotator/domain/key_file.py): pure functions, no store."""

from __future__ import annotations

import pytest

from rotator.domain import key_file, rotation
from rotator.domain.errors import InvalidEntry
from rotator.domain.models import NewKey
from rotator.domain.rotation import Slot

MIN = 60_000
T0 = 1_000 * MIN


def slots(*spec: tuple[bool, int | None]) -> list[Slot]:
    """Keys 1, 2, ... with (active, entered_ms)."""
    return [Slot(i, active, entered) for i, (active, entered) in enumerate(spec, start=1)]


def test_state_and_expiry():
    ttl = 10 * MIN
    running, started = Slot(1, True, T0), Slot(2, True, None)
    assert rotation.expires_at_ms(running, ttl) == T0 + ttl
    assert rotation.state(running, ttl, T0 + ttl - 1) == "active"
    assert rotation.state(running, ttl, T0 + ttl) == "expired"  # at ttl exactly: expired
    assert rotation.expires_at_ms(started, ttl) is None
    assert rotation.state(started, ttl, T0 + 99 * ttl) == "active"  # not entered: not expired
    assert rotation.state(Slot(3, False, T0), ttl, T0) == "disabled"
    # other policies have no lifetime (ttl None): an entry time means nothing
    assert rotation.state(running, None, T0 + 99 * ttl) == "active"
    assert rotation.expires_at_ms(running, None) is None


@pytest.mark.parametrize(
    ("policy", "keys", "pointer", "expected"),
    [
        ("manual", slots((True, None), (True, None)), None, 1),  # from the first key on
        ("manual", slots((True, None), (True, None)), 2, 2),
        ("manual", slots((True, None), (False, None), (True, None)), 2, 3),  # skips disabled
        ("manual", slots((True, None), (True, None)), 99, 1),  # a pointer to no key: the first
        ("manual", slots((True, None), (False, None)), 2, 1),  # wraps around
        ("manual", slots((False, None)), None, None),
        ("usage", slots((True, None)), None, None),  # usage has no current key
        ("time", slots((True, T0 - 10 * MIN), (True, None)), 1, 2),  # 1 expired
        ("time", slots((True, T0 - 5 * MIN), (True, None)), 1, 1),
    ],
)
def test_current_walks_from_the_pointer(policy, keys, pointer, expected):
    assert rotation.current(policy, keys, pointer, 10 * MIN, T0) == expected


def test_time_keys_run_out_after_their_lifetimes_add_up():
    ttl = 10 * MIN
    # none started: N keys of T minutes cover N x T minutes
    assert rotation.run_out_ms("time", slots((True, None)), None, ttl, T0) == T0 + ttl
    three = slots((True, None), (True, None), (True, None))
    assert rotation.run_out_ms("time", three, None, ttl, T0) == T0 + 3 * ttl
    # the current key started 4 minutes ago: 6 left, then two whole lifetimes
    started = slots((True, T0 - 4 * MIN), (True, None), (True, None))
    assert rotation.run_out_ms("time", started, 1, ttl, T0) == T0 + 6 * MIN + 2 * ttl
    # disabled keys do not count; expired ones neither; a key that started out of turn
    # (re-ordered) runs on its own clock
    mixed = slots((True, T0 - 12 * MIN), (False, None), (True, T0 - 2 * MIN), (True, None))
    assert rotation.current("time", mixed, 1, ttl, T0) == 3
    assert rotation.run_out_ms("time", mixed, 1, ttl, T0) == T0 + 8 * MIN + ttl
    assert rotation.run_out_ms("time", slots((True, T0 - ttl)), 1, ttl, T0) is None  # out
    assert rotation.run_out_ms("manual", three, None, None, T0) is None


def test_key_file_lines():
    text = (
        "\ufeff# keys for openai\n"
        "sk-one\n"
        "\n"
        "  sk-two\tBackup  \n"
        "sk-three\tBatch\t1_000\r\n"
        "sk-four,Spare,\n"
        "sk-five\t\t5\n"
    )
    lines = key_file.parse(text)
    assert [(line.number, line.key) for line in lines] == [
        (2, NewKey(secret="sk-one")),
        (4, NewKey(secret="sk-two", label="Backup")),
        (5, NewKey(secret="sk-three", label="Batch", max_daily_requests=1000)),
        (6, NewKey(secret="sk-four", label="Spare")),
        (7, NewKey(secret="sk-five", max_daily_requests=5)),
    ]


@pytest.mark.parametrize(
    ("text", "number", "field"),
    [
        ("sk-a\nsk-b\tx\tten\n", 2, "max_daily_requests"),
        ("# c\n\nsk-a,b,1,extra\n", 3, "line"),
    ],
)
def test_key_file_errors_name_the_line_never_the_secret(text, number, field):
    with pytest.raises(key_file.InvalidLine) as err:
        key_file.parse(text)
    assert (err.value.number, err.value.field) == (number, field)
    assert "sk-" not in err.value.message and err.value.message.startswith(f"line {number}: ")


def test_a_refused_entry_is_told_by_its_line():
    lines = key_file.parse("# header\nsk-a\n\nsk-b\n")
    refused = key_file.line_error(lines, InvalidEntry("keys", 1, "secret", "too long"))
    assert (refused.number, refused.field, refused.problem) == (4, "secret", "too long")
