"""workers/cancel.py: a task that loses a cancellation is cancelled again until it stops."""

from __future__ import annotations

import asyncio

from rotator.cancel import cancel_and_wait


async def test_a_task_that_swallows_a_cancel_is_stopped_anyway():
    swallowed = 0

    async def pump() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed < 2:  # what asyncio.timeout(0) does to a cancel on Python 3.11
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(pump())
    await asyncio.sleep(0.02)
    task.cancel()  # one cancel, lost
    await asyncio.sleep(0.05)
    assert not task.done()
    await cancel_and_wait(task, retry_s=0.01)
    assert task.cancelled() and swallowed == 2


async def test_a_finished_task_is_left_as_it_is():
    task = asyncio.create_task(asyncio.sleep(0, result=7))
    await task
    await cancel_and_wait(task)
    assert task.result() == 7
