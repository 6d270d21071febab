"""What of a write an audit record may hold: names always, never a secret's value."""

from __future__ import annotations

import msgspec

from rotator.domain.audit import REDACTED, fingerprint, redact
from rotator.domain.models import NewKey


def test_secret_fields_are_redacted_by_name_at_any_depth():
    assert redact("secret", "sk-anything") == REDACTED
    assert redact("webhook_secret", None) == REDACTED
    assert redact("client_token", "my-imported-token-0123456789") == REDACTED
    keys = [NewKey(secret="sk-a", label="A"), {"secret": "sk-b", "label": "B"}]
    shown = redact("new_keys", keys)
    assert [k["secret"] for k in shown] == [REDACTED, REDACTED]
    assert [k["label"] for k in shown] == ["A", "B"]
    assert "sk-a" not in msgspec.json.encode(shown).decode()


def test_token_shapes_and_url_credentials_are_redacted_in_any_text():
    assert redact("name", "krc_0123456789abcdef_Zm9v-bar") == REDACTED
    assert redact("note", "see kta_0123456789abcdef_abc_def please") == f"see {REDACTED} please"
    assert redact("webhook_url", "https://user:pw@hooks.example/x?a=1") == (
        "https://***@hooks.example/x?a=1"
    )
    assert redact("webhook_url", "https://hooks.example/x") == "https://hooks.example/x"


def test_values_are_kept_small_and_plain():
    assert redact("rows", list(range(100))) == "<100 items>"
    assert redact("name", "x" * 500).endswith("…") and len(redact("name", "x" * 500)) == 201
    assert redact("blob", b"\x00sealed") == REDACTED
    assert redact("max_daily_requests", None) is None
    assert redact("active", False) is False
    assert fingerprint("secret") == fingerprint("secret") != fingerprint("other")
    assert len(fingerprint("secret")) == 8
