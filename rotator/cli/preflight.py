"""What `rotator run` and `rotator serve` check before they change anything.

A second `rotator run` on one data dir used to reach the first one's API in its health
check, report "up", reissue (and so revoke) the demo token, and only then fail to bind
the port. Now the data dir is locked first, and the port is tried before any process
is spawned or any record written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from rotator.cli.common import CliError

RUN_LOCK_FILE = "run.lock"


class RunLock:
    """An flock on DATA_DIR/run.lock for the life of one `rotator run`; the file holds that
    run's pid and URL, which is what a second run names when it refuses.

    The lock is on the open file (flock), so it ends with the process however it ends:
    a stale file after a crash does not block the next run. Children do not inherit the
    descriptor (Popen closes it), so a child outliving its parent cannot hold it either.
    """

    def __init__(self, data_dir: Path, url: str) -> None:
        self.path = Path(data_dir).resolve() / RUN_LOCK_FILE
        self.url = url
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            problem = f"cannot lock {self.path}: {exc.strerror}"
            raise CliError(f"ROTATOR_DATA_DIR: {problem}", 2) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise CliError(
                f"ROTATOR_DATA_DIR: {self.path.parent} is in use by another `rotator run` "
                f"({holder}); stop it first, or give this one another ROTATOR_DATA_DIR",
                2,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "url": self.url}).encode() + b"\n", 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        # the holder writes its pid right after taking the lock: an empty read is a run
        # still starting, named as such rather than waited for
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(os.pread(fd, 4096, 0) or b"{}")
            if "pid" in record:
                return f"pid {record['pid']}, {record.get('url', 'URL unknown')}"
        return "pid unknown: it is starting"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # releases the flock
            self._fd = None


def check_port(host: str, port: int) -> None:
    """Exit 2 naming ROTATOR_PORT when the API could not listen on host:port.

    Binds as uvicorn will (SO_REUSEADDR, so a port in TIME_WAIT from our own last run is
    not mistaken for a taken one) and closes at once. Another program could take the
    port between this check and uvicorn's bind: `rotator run` then reports the API's
    exit during start, as before.
    """
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CliError(f"ROTATOR_HOST: cannot resolve {host!r} ({exc.strerror})", 2) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                ip = address[0]
                shown = f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"
                reason = exc.strerror
                if exc.errno == errno.EADDRINUSE:
                    reason = "already in use by another program"
                raise CliError(
                    f"ROTATOR_PORT: cannot listen on {shown} ({reason}); "
                    "stop that program or set ROTATOR_PORT to a free port",
                    2,
                ) from None
