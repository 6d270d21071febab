"""`rotator run` as a real process: it restarts a crashed child, refuses a second run on its
data dir, and refuses a taken port, in each case without damage to what runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rotator.embedded import free_port
from tests.integration.cli_support import base_env, rotator
from tests.integration.test_cli import children_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


class Run:
    """A `rotator run` child, its banner read."""

    def __init__(self, proc: subprocess.Popen, log: Path, banner: str) -> None:
        self.proc = proc
        self.log = log
        self.banner = banner
        curl = re.search(r'curl -s "([^"]+)"', banner)
        assert curl, banner
        self.demo_url = curl.group(1)

    def child(self, command: str) -> int:
        """The pid of the child running `rotator <command>`."""
        for pid in children_of(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if command.encode() in argv and b"rotator.cli" in argv:
                return pid
        raise AssertionError(f"no {command} child")


@contextmanager
def rotator_run(tmp_path: Path, env: dict[str, str], name: str = "run") -> Iterator[Run]:
    log = tmp_path / f"{name}.stderr"  # a file, not a pipe: the children's logs never block
    with (
        log.open("w") as stderr_file,
        subprocess.Popen(
            [sys.executable, "-m", "rotator.cli", "run"],
            env=env, stdout=subprocess.PIPE, stderr=stderr_file, text=True,
        ) as proc,
    ):  # fmt: skip
        try:
            lines = []
            for line in proc.stdout:  # the banner is printed once /healthz answers
                lines.append(line)
                if "v1/next" in line:
                    break
            yield Run(proc, log, "".join(lines))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def deliver(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.timeout(120)
def test_a_killed_worker_is_restarted_and_the_api_stays_up(tmp_path):
    port = free_port()
    env = base_env(
        ROTATOR_DATA_DIR=str(tmp_path / "var"), ROTATOR_PORT=str(port),
        ROTATOR_DEMO_RATE_PER_MIN="6000", ROTATOR_DEMO_BURST="1000",  # the demo throttle
    )  # fmt: skip
    with rotator_run(tmp_path, env) as run:
        api, worker = run.child("serve"), run.child("worker")
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        served = 0
        while "worker restarted" not in run.log.read_text():
            assert time.monotonic() < deadline, run.log.read_text()
            assert deliver(run.demo_url)["masked"] is True  # the API serves throughout
            served += 1
            time.sleep(0.05)
        assert served > 0
        assert run.proc.poll() is None
        assert run.child("serve") == api  # untouched
        assert run.child("worker") != worker
        run.proc.send_signal(signal.SIGINT)
        assert run.proc.wait(30) == 0
    stderr = run.log.read_text()
    assert "worker exited with code -9" in stderr and "restarting it in 1s" in stderr
    assert "API exited" not in stderr
    assert stderr.index("stopping API") < stderr.index("stopping worker")


@pytest.mark.timeout(120)
def test_a_dead_embedded_valkey_stops_run_loudly(tmp_path):
    """Not a silent 503 for ever: run says so and exits 1, for a process manager to start
    it again."""
    env = base_env(ROTATOR_DATA_DIR=str(tmp_path / "var"), ROTATOR_PORT=str(free_port()))
    with rotator_run(tmp_path, env) as run:
        valkey = next(
            pid
            for pid in children_of(run.proc.pid)
            if b"valkey-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        api = run.child("serve")
        os.kill(valkey, signal.SIGKILL)
        assert run.proc.wait(30) == 1
        assert "the embedded Valkey has exited: stopping everything" in run.log.read_text()
        assert (
            not Path(f"/proc/{api}").exists()
            or b"zombie" in Path(f"/proc/{api}/status").read_bytes()
        )  # its children were stopped with it


@pytest.mark.timeout(120)
def test_a_second_run_on_the_same_data_dir_changes_nothing(tmp_path):
    port = free_port()
    env = base_env(ROTATOR_DATA_DIR=str(tmp_path / "var"), ROTATOR_PORT=str(port))
    with rotator_run(tmp_path, env) as first:
        before = deliver(first.demo_url)
        second = rotator("run", env=env, timeout=30)
        assert second.returncode == 2, second.stderr
        assert second.stdout == ""  # no banner, no token
        assert second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith("rotator: ROTATOR_DATA_DIR: ")
        assert f"pid {first.proc.pid}" in second.stderr
        assert f"http://127.0.0.1:{port}" in second.stderr
        # the first run's demo token still works: the second did not reissue it
        after = deliver(first.demo_url)
        assert after["service"] == before["service"] == "openai"
        assert first.proc.poll() is None


@pytest.mark.timeout(60)
def test_a_port_taken_by_another_program_is_named_and_nothing_starts(tmp_path):
    data_dir = tmp_path / "var"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = base_env(ROTATOR_DATA_DIR=str(data_dir), ROTATOR_PORT=str(port))
        for command in ("run", "serve"):
            r = rotator(command, env=env)
            assert r.returncode == 2, r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
            assert r.stderr.startswith(f"rotator: ROTATOR_PORT: cannot listen on 127.0.0.1:{port}")
            assert "already in use" in r.stderr
    # nothing was started or generated: no Valkey data, no master key
    assert sorted(p.name for p in data_dir.iterdir()) == ["run.lock"]


def test_run_help_documents_its_options_and_the_settings():
    r = rotator("run", "--help", env=base_env())
    assert r.returncode == 0
    assert "ROTATOR_PORT" in r.stdout and "ROTATOR_DATA_DIR" in r.stdout
    assert "run.lock" in r.stdout  # what a second run on the data dir meets
