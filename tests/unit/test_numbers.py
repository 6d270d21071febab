"""rotator/domain/numbers.py: whole numbers typed as text, read one way everywhere."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.domain.numbers import MAX_DIGITS, whole_number


@given(st.integers(min_value=-(10**MAX_DIGITS) + 1, max_value=10**MAX_DIGITS - 1))
def test_every_integer_written_out_reads_back(n):
    assert whole_number(str(n)) == n
    assert whole_number(f" {n:_} ") == n  # `_` between digits, as the API's examples write


@given(st.text(max_size=40))
def test_anything_else_is_none_never_an_exception(text):
    expected = re.fullmatch(rf"-?[0-9]{{1,{MAX_DIGITS}}}", text.strip().replace("_", ""))
    assert (whole_number(text) is not None) == bool(expected)


@pytest.mark.parametrize("text", ["²", "٣٠", "1.5", "1e3", "--1", "-", "", "9" * 5000, "0x10"])
def test_what_isdigit_or_int_would_take_or_choke_on(text):
    assert whole_number(text) is None
