"""The client's records use the API's field names: the server's own delivery record is the
reference, so a field renamed there fails here."""

from __future__ import annotations

import subprocess
import sys

import msgspec

from rotator.api.delivery import Limits, Meta, NextKey
from rotator.client import Key, KeyLimits, KeyMeta


def names(struct: type[msgspec.Struct]) -> list[str]:
    return list(struct.__struct_fields__)


def test_field_names_are_the_servers():
    assert names(Key) == names(NextKey)
    assert names(KeyMeta) == names(Meta)
    # the client also reads the fields issue #15 adds (SPEC §7), absent on older servers
    assert set(names(Limits)) <= set(names(KeyLimits))
    assert "max_requests_per_minute" in names(KeyLimits)


def test_a_servers_answer_reads_back_whole():
    sent = NextKey(
        service="openai", key_label="Primary", key="sk-x", masked=False, policy="usage",
        limits=Limits(100, 5), meta=Meta(key_id=7, usage_today=3),
    )  # fmt: skip
    got = msgspec.json.decode(msgspec.json.encode(sent), type=Key)
    assert got.limits == KeyLimits(max_daily_requests=100, app_max_daily_requests=5)
    assert (got.key, got.key_id, got.meta.usage_today) == ("sk-x", 7, 3)


def test_unknown_fields_from_a_newer_server_are_ignored():
    body = {"service": "s", "key_label": "l", "key": "k", "masked": True, "policy": "weighted",
            "limits": {"max_daily_requests": None, "later": 1},
            "meta": {"key_id": 1, "usage_today": 1, "weight": 3}, "extra": {}}  # fmt: skip
    assert msgspec.convert(body, Key).policy == "weighted"


def test_the_client_imports_nothing_of_the_server():
    """An application importing the client loads neither the web framework nor redis."""
    code = (
        "import sys, rotator.client; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'litestar', 'redis', 'arq', "
        "'cryptography', 'uvicorn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
