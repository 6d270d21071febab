"""Token parsing: whole-string matches only (a `$` anchor lets a trailing newline through)."""

from __future__ import annotations

import pytest

from rotator.domain import tokens


def test_a_minted_token_parses():
    minted = tokens.mint_app("0123456789abcdef", 42)
    parsed = tokens.parse(minted.token)
    assert parsed is not None
    assert (parsed.kind, parsed.tenant, parsed.app) == ("kra", "0123456789abcdef", "42")
    assert parsed.secret_hash == minted.secret_hash


@pytest.mark.parametrize(
    "token",
    [
        "krc_abc\n_secret",  # tenant with a trailing newline
        "kta_abc\n_secret",
        "kra_abc\n_1_secret",
        "kra_abc_\u00b2_secret",  # '²' passes str.isdigit()
        "kra_abc_\u0663_secret",  # ARABIC-INDIC DIGIT THREE: isdigit() too
        "kra_abc_1\n_secret",
        "krc_ABC_secret",
        "krc_\u0430bc_secret",  # Cyrillic a
        "krcAbCdEfGh_ijk_lmnopqrstu",  # no '_' after the kind: a hosted token, importable
        "kraX_abc_1_secret",
    ],
)
def test_malformed_tokens_are_refused(token):
    assert tokens.parse(token) is None


@pytest.mark.parametrize("tenant", ["abc\n", "abc\r\n", "ab c", "", "a" * 33, "\u0430bc"])
def test_tenant_ids_are_matched_whole(tenant):
    assert not tokens.valid_tenant_id(tenant)
    assert tokens.valid_tenant_id(tokens.new_tenant_id())


def test_a_hosted_token_that_begins_like_ours_can_be_imported():
    assert tokens.imported_problem("krcAbCdEfGh_ijk_lmnopqrstu") is None
    assert tokens.imported_problem("krc_abc_lmnopqrstuvwxyz") is not None
