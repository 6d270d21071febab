"""Running `rotator` as a user does: a real subprocess, with a clean environment."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any developer ROTATOR_* configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(extra)
    return env


def rotator(
    *args: str, env: dict[str, str], stdin: str | bytes | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS`, its output as text. `stdin` as bytes is sent as it is (input that is not
    UTF-8); an argument holding a lone surrogate (`"na\\udcffme"`) reaches the command as the
    byte it stands for, as a shell passes one."""
    command = [sys.executable, "-m", "rotator.cli", *args]
    if isinstance(stdin, bytes):
        done = subprocess.run(command, env=env, input=stdin, capture_output=True, timeout=timeout)
        out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        return subprocess.CompletedProcess(command, done.returncode, out, err)
    return subprocess.run(
        command,
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


async def cut_short(
    r: Any, args: list[str], env: dict[str, str], how: str
) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` cut short at its first write, which `r`'s server holds paused: by Ctrl-C
    (`how` "ctrl_c", once it waits on the pause) or by the store's timeout (500 ms)."""
    await r.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.cli", *args],
        env={**env, "ROTATOR_REDIS_TIMEOUT_MS": "60000" if how == "ctrl_c" else "500"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if how == "ctrl_c":
            await wait_until_blocked(r)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        await r.execute_command("CLIENT", "UNPAUSE")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
