"""Running `rotator` as a user does: a real subprocess, with a clean environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any


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


async def wait_until_blocked(r: Any, timeout_s: float = 20.0) -> None:
    """Until another client of `r`'s server is blocked (flag b: a paused write)."""
    async with asyncio.timeout(timeout_s):
        while not any("b" in c["flags"] for c in await r.client_list()):
            await asyncio.sleep(0.02)
