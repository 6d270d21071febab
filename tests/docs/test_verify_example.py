"""docs/api.md's hand-written signature check, run: it must accept what the worker signs
and refuse a forged or a non-ASCII signature (never raise on what a sender put there)."""

from __future__ import annotations

import base64
import time

import pytest

from tests.docs.markdown import ROOT
from tests.docs.test_client_examples import python_blocks
from workers import signing

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = b'{"type":"webhook.test"}'


@pytest.fixture(scope="module")
def verify():
    blocks = [code for _, code in python_blocks(ROOT / "docs" / "api.md") if "def verify(" in code]
    assert len(blocks) == 1, "docs/api.md has one verify example"
    scope: dict = {}
    exec(blocks[0], scope)  # our own documentation
    return scope["verify"]


def test_accepts_what_the_worker_signs(verify):
    headers = signing.headers(SECRET, "msg_1", int(time.time()), BODY)
    assert verify(SECRET, headers, BODY)
    assert not verify(SECRET, headers, BODY + b" ")


@pytest.mark.parametrize("offered", ["v1,bm9wZQ==", "v1,é", "v1,\u2603 v1,x"])
def test_refuses_a_wrong_or_non_ascii_signature(verify, offered):
    headers = {**signing.headers(SECRET, "msg_1", int(time.time()), BODY)}
    headers["webhook-signature"] = offered
    assert not verify(SECRET, headers, BODY)
