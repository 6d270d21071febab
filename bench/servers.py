"""The processes under test: Valkey (EmbeddedValkey, AOF as in production) and the apps,
on uvicorn (production's server) or granian (`--server granian`, to compare).

CPU placement on a small machine: the load generator and Valkey share one core and
the API workers get the others, so the API (the part being compared with the bare
handler) is what saturates. `Placement` holds that plan; `--no-pin` turns it off.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rotator.embedded import EmbeddedValkey, free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Placement:
    """Which CPUs each process may run on (None = anywhere)."""

    load: set[int] | None
    valkey: set[int] | None
    api: set[int] | None

    @classmethod
    def plan(cls, *, pin: bool, workers: int) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, None, None)
        api = set(cpus[1:])
        # more workers than the API cores: let the scheduler place them (pinning would starve)
        if workers > len(api):
            return cls(None, None, None)
        return cls({cpus[0]}, {cpus[0]}, api)

    def cpus(self) -> set[int]:
        """Every CPU the bench's processes may run on."""
        if self.api is None:
            return set(os.sched_getaffinity(0))
        return set().union(self.load or (), self.valkey or (), self.api)

    def describe(self) -> str:
        if self.api is None:
            return "unpinned (scheduler places every process)"
        return (
            f"wrk on CPU {_cpus(self.load)}, Valkey on CPU {_cpus(self.valkey)}, "
            f"API workers on CPU {_cpus(self.api)}"
        )


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))


def pin_all_threads(pid: int, cpus: set[int]) -> None:
    """sched_setaffinity on every thread of `pid` (Valkey's bio threads included)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


def start_valkey(data_dir: Path, cpus: set[int] | None, nice: int = 0) -> EmbeddedValkey:
    """A fresh Valkey with production persistence: appendonly yes, appendfsync everysec."""
    server = EmbeddedValkey(data_dir, appendonly=True)
    server.start()
    assert server.process is not None
    if cpus:
        pin_all_threads(server.process.pid, cpus)
    if nice:
        for task in os.listdir(f"/proc/{server.process.pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(task), nice)
    return server


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (uvicorn's supervisor and its workers)."""
    found = [pid]
    for parent in found:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    found.extend(int(c) for c in f.read().split())
    return found


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


SERVERS = ("uvicorn", "granian")


class Uvicorn:
    """One app server (the API, the bare app or a baseline) with the flags production uses:
    uvicorn with uvloop and httptools; or granian (its ASGI interface, uvloop), whose
    workers are always child processes of its supervisor."""

    def __init__(
        self,
        factory: str,
        *,
        env: dict[str, str],
        workers: int,
        cpus: set[int] | None,
        log_path: Path,
        server: str = "uvicorn",
    ) -> None:
        if server not in SERVERS:
            raise ValueError(f"server must be one of {', '.join(SERVERS)}")
        self.server = server
        self.factory = factory
        self.env = env
        self.workers = workers
        self.cpus = cpus
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.server == "granian":
            return [
                sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers), "--loop", "uvloop",
                "--log-level", "warning", self.factory,
            ]  # fmt: skip
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-access-log",
            "--no-proxy-headers",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ]

    def start(self, timeout_s: float = 30.0) -> str:
        cpus = self.cpus
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.factory} exited with {self.process.returncode}; see {self.log_path}"
                )
            if _healthy(self.base_url):
                # with several workers, give the others time to come up too
                if self.workers > 1:
                    time.sleep(1.0)
                return self.base_url
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.factory} did not answer /healthz within {timeout_s}s")

    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process else []

    def worker_pids(self) -> list[int]:
        """The processes serving requests (the supervisor itself with one worker)."""
        pids = self.pids()
        supervised = self.workers > 1 or self.server == "granian"
        return pids[1:] if supervised and len(pids) > 1 else pids[:1]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
