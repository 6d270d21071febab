"""`rotator run`'s restart policy for its children: 1 s, 2 s, 4 s ... 30 s, reset when healthy."""

from __future__ import annotations

from rotator.cli import children


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


def test_backoff_doubles_to_the_cap_and_resets_after_a_healthy_run(capsys):
    now = [0.0]
    started: list[FakeProcess] = []

    def start(command, env):
        started.append(FakeProcess(len(started) + 1))
        return started[-1]

    child = children.Child("worker", "worker", {}, clock=lambda: now[0], start=start)
    child.start()
    delays = []
    for _ in range(7):  # crashes right after each start
        now[0] += 0.5
        started[-1].code = 1
        child.tend()
        delays.append(child.delay_s)
        now[0] = child.restart_at - 0.01
        child.tend()
        assert len(started) == len(delays)  # not before its time
        now[0] = child.restart_at
        child.tend()
        assert len(started) == len(delays) + 1
    assert delays == [1, 2, 4, 8, 16, 30, 30]

    now[0] += children.HEALTHY_AFTER_S  # ran a minute: a crash now starts over
    started[-1].code = -9
    child.tend()
    assert child.delay_s == children.RESTART_BASE_S
    err = capsys.readouterr().err
    assert "rotator: worker exited with code 1 after 0s; restarting it in 1s" in err
    assert "rotator: worker exited with code -9 after 60s; restarting it in 1s" in err
    assert "rotator: worker restarted (pid 2)" in err


def test_a_stopped_child_is_not_restarted():
    now = [0.0]
    process = FakeProcess(1)
    child = children.Child("API", "serve", {}, clock=lambda: now[0], start=lambda c, e: process)
    child.start()
    process.code = 1
    child.tend()
    child.stop()  # Ctrl-C while a restart is pending
    for _ in range(3):
        now[0] += 100
        child.tend()
    assert child.restarts == 0 and child.restart_at is None
