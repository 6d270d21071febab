"""Test-only programs from Debian packages (nginx, chromium, nodejs, curl): found, or
installed with apt-get when the tests run as root, or the test fails with the one command
that installs it.

A missing test requirement never skips: a suite that passes by skipping hides that the
machine cannot run it. Installing may take minutes on a fresh machine (apt-get update):
tests that need a package carry a timeout to match.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

APT_TIMEOUT_S = 280


def find(program: str, places: tuple[str, ...] = ()) -> str | None:
    """`program` on PATH, else the first executable of `places` (for /usr/sbin outside
    a root PATH)."""
    found = shutil.which(program)
    if found:
        return found
    return next((p for p in places if os.access(p, os.X_OK)), None)


def require(program: str, package: str, places: tuple[str, ...] = ()) -> str:
    """The path of `program`, from the Debian `package`; installed when missing and running
    as root, otherwise the test fails naming the command to run."""
    path = find(program, places)
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(
            f"{program} is not installed: sudo apt-get install -y {package} (or run as root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    # one installer at a time: the suite's worker processes may need packages at once, and
    # a second apt-get would fail on dpkg's lock instead of waiting for it
    with (Path(tempfile.gettempdir()) / "rotator-tests-apt.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = find(program, places)  # another worker may have installed it meanwhile
        if path:
            return path
        # the package lists may be missing or stale: install, else update and install again
        for step in (install, ["apt-get", "update", "-q"], install):
            subprocess.run(step, env=env, capture_output=True, timeout=APT_TIMEOUT_S, check=False)
            path = find(program, places)
            if path:
                return path
    pytest.fail(
        f"apt-get could not install {package} (offline?): install the Debian package {package}"
    )
