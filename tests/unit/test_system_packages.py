"""tests/system_packages.py: a missing test-only program fails with its install command."""

from __future__ import annotations

import os

import pytest

from tests import system_packages


def test_a_present_program_is_found():
    assert system_packages.require("sh", "dash") == system_packages.find("sh")


def test_a_missing_program_fails_naming_the_command(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: nothing is installed
    with pytest.raises(pytest.fail.Exception) as failed:
        system_packages.require("no-such-program-kr", "no-such-package-kr")
    assert str(failed.value) == (
        "no-such-program-kr is not installed: sudo apt-get install -y no-such-package-kr "
        "(or run as root)"
    )
