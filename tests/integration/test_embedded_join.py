"""A command joining the data dir's embedded Valkey that another process runs (`rotator run`
holds its lock): a frozen server fails it within seconds, a loading one is waited for."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

import redis

from rotator.embedded import JOIN_SILENT_S, EmbeddedValkey, SharedEmbedded
from tests.integration.cli_support import base_env, rotator


def test_a_stopped_embedded_valkey_fails_a_command_within_seconds(tmp_path):
    """`kill -STOP` of the server `rotator run` holds: the kernel still accepts connections,
    nothing answers. Exit 2 naming ROTATOR_DATA_DIR, about as fast as a frozen
    ROTATOR_REDIS_URL, not after a minute of waiting for a server that is not starting."""
    data_dir = tmp_path / "var"
    holder = SharedEmbedded(data_dir)
    holder.acquire()
    assert holder.server is not None and holder.server.process is not None
    pid = holder.server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started_s = time.monotonic()
        r = rotator("tenant", "list", env=base_env(ROTATOR_DATA_DIR=str(data_dir)), timeout=30)
        elapsed_s = time.monotonic() - started_s
    finally:
        os.kill(pid, signal.SIGCONT)
        holder.release()
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(
        f"rotator: ROTATOR_DATA_DIR: embedded Valkey: the embedded Valkey of {data_dir} is "
        "locked but not answering: its server (port "
    ), r.stderr
    assert "accepts connections but answered no PING" in r.stderr
    assert r.stderr.count("\n") == 1
    assert elapsed_s < 8, elapsed_s


def _write_aof(data_dir: Path, keys: int) -> None:
    """An AOF (its RDB base) of `keys` keys."""
    server = EmbeddedValkey(data_dir)
    server.start()
    try:
        client = redis.Redis(port=server.port)
        with client:
            client.eval(f"for i=1,{keys} do redis.call('SET','junk:'..i,'x') end", 0)
            client.bgrewriteaof()
            while any(client.info("persistence")[f] for f in
                      ("aof_rewrite_in_progress", "aof_rewrite_scheduled")):  # fmt: skip
                time.sleep(0.05)
    finally:
        server.stop()


def test_a_command_waits_for_an_embedded_valkey_loading_its_aof(tmp_path):
    """A server that answers LOADING (reading a big AOF) is alive: a command joining it waits,
    however much longer than JOIN_SILENT_S the load takes. The load is slowed down with
    Valkey's key-load-delay (microseconds per key) instead of a big file."""
    data_dir = tmp_path / "var"
    _write_aof(data_dir, 10_000)
    # the test plays `rotator run`: it holds the lock and names the port, as
    # SharedEmbedded.acquire does, and starts a server that takes seconds to load
    lock_fd = os.open(data_dir / "valkey.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    server = EmbeddedValkey(
        data_dir,
        extra_args=(
            "--key-load-delay", "300",
            # serve clients (LOADING) every KB of the file, as a real load of MBs does
            "--loading-process-events-interval-bytes", "1024",
        ),
    )  # fmt: skip
    (data_dir / "valkey.port").write_text(str(server.port))
    finished = threading.Event()

    def start_and_stay() -> None:
        server.start(timeout_s=60)
        # the server dies with the thread that started it (PR_SET_PDEATHSIG follows the
        # thread, not the process): this one lives until the test is done with it
        finished.wait(60)

    starting = threading.Thread(target=start_and_stay)
    try:
        starting.start()
        started_s = time.monotonic()
        r = rotator("tenant", "list", env=base_env(ROTATOR_DATA_DIR=str(data_dir)), timeout=60)
        elapsed_s = time.monotonic() - started_s
    finally:
        server.stop()
        finished.set()
        starting.join(60)
        os.close(lock_fd)
    assert r.returncode == 0, r.stderr
    assert elapsed_s > JOIN_SILENT_S, "the load was too quick to show anything"
    assert "Done loading" in (data_dir / "valkey.log").read_text()
