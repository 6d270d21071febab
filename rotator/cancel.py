"""Stopping a task for sure: cancel it, and cancel it again until it has stopped; and
`Background`, the helpers that run one task of their own while the process serves.

On Python 3.11 one cancellation is not always enough. redis-py checks a pooled
connection with `asyncio.timeout(0)` (its hiredis parser's can_read_destructive); a
cancellation that lands inside that block is turned by asyncio.timeout into the
TimeoutError redis-py expects there and ignores, so the task runs on as if nothing had
been asked (CPython fixed asyncio.timeout in 3.12). Seen as a worker that ignored
SIGTERM: its event pump lost the cancel, and the shutdown waited for it forever
(tests/integration/test_quiet_logs.py, and 4 in 65 SIGTERMs of a loaded worker).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from rotator.tuning import CANCEL_RETRY_S


async def cancel_and_wait(task: asyncio.Future, retry_s: float = CANCEL_RETRY_S) -> None:
    """Cancel `task` until it is done (its outcome is left in it, not raised here)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)


class Background(ABC):
    """A helper that runs one task of its own (`_run`) while the process serves: `launch`
    starts it, `stop` stops it for sure. A subclass whose stop does more (a last fold, a
    last line) does it after `await super().stop()`."""

    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _run(self) -> None:
        """The task's work, until cancelled."""

    def launch(self, name: str) -> None:
        self._task = asyncio.create_task(self._run(), name=name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
