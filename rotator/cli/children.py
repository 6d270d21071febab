"""The child processes of `rotator run` (the API and the worker), kept running.

A child that exits after the start is restarted with backoff (1 s, 2 s, 4 s, ...
capped at 30 s; back to 1 s once it had run for a minute), and `rotator run` says so
on stderr each time; the other children carry on. Before, one child's exit stopped
everything: a worker dying in a Valkey outage took the API down with it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from rotator.cli.common import say
from rotator.tuning import HEALTHY_AFTER_S, RESTART_BASE_S, RESTART_CAP_S, STOP_TIMEOUT_S


def spawn(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`rotator <command>` as a child that dies with us (even if we are SIGKILLed)."""
    from rotator.embedded import die_with_parent

    # a session of its own: the terminal's Ctrl-C reaches only `rotator run`, which stops
    # the children in order (API first, so no request finds the store gone)
    return subprocess.Popen(
        [sys.executable, "-m", "rotator.cli", command],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


class Child:
    """One supervised `rotator <command>`."""

    def __init__(
        self,
        name: str,
        command: str,
        env: dict[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
        start: Callable[[str, dict[str, str]], subprocess.Popen[bytes]] = spawn,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.clock = clock
        self._start = start
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.delay_s = 0.0
        """The backoff before the next restart (0 until the first exit)."""
        self.restart_at: float | None = None
        self.restarts = 0
        self.stopped = False

    def start(self) -> None:
        self.process = self._start(self.command, self.env)
        self.started_at = self.clock()
        self.restart_at = None

    def exited(self) -> int | None:
        """The exit code when the child has exited (and is not yet restarted), else None."""
        if self.process is None:
            return None
        return self.process.poll()

    def tend(self) -> None:
        """Notice an exit and schedule the restart; restart when its time has come."""
        if self.stopped:
            return
        now = self.clock()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
                self.restarts += 1
                assert self.process is not None
                say(f"{self.name} restarted (pid {self.process.pid})")
            return
        code = self.exited()
        if code is None:
            return
        ran_s = now - self.started_at
        if ran_s >= HEALTHY_AFTER_S or self.delay_s == 0:
            self.delay_s = RESTART_BASE_S
        else:
            self.delay_s = min(RESTART_CAP_S, self.delay_s * 2)
        self.restart_at = now + self.delay_s
        say(
            f"{self.name} exited with code {code} after {ran_s:.0f}s; "
            f"restarting it in {self.delay_s:.0f}s"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; never restarted after this."""
        self.stopped = True
        self.restart_at = None
        process = self.process
        if process is None or process.poll() is not None:
            return
        say(f"stopping {self.name}")
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in {STOP_TIMEOUT_S:.0f}s; killing it")
            process.kill()
            process.wait()
