"""Running `rotator` as a user does: a real subprocess, with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any developer ROTATOR_* configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(extra)
    return env


def rotator(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 30):
    return subprocess.run(
        [sys.executable, "-m", "rotator.cli", *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
