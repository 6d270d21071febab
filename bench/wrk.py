"""wrk, the load generator: find (or install) it, run it with bench/spread.lua, parse its output.

The Lua script's `done` callback prints one `BENCHJSON {...}` line (requests, errors,
status counts, latency percentiles in µs); `parse_output` reads it, and wrk's own
`Requests/sec:` line as a cross-check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("spread.lua")

INSTALL_HINT = (
    "wrk (the HTTP load generator) is not installed. Install the Debian package and rerun:\n"
    "    sudo apt-get update && sudo apt-get install -y wrk\n"
    "(running the bench as root installs it by itself)."
)


class WrkMissing(RuntimeError):
    """wrk is absent and could not be installed; the message says how to get it."""


class WrkFailed(RuntimeError):
    """wrk ran but its output has no result (crash, bad URL, script error)."""


def ensure_wrk(*, install: bool = True, log: Callable[[str], None] = print) -> str:
    """Path of wrk; installs the Debian package when missing and running as root."""
    path = shutil.which("wrk")
    if path:
        return path
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "install", "-y", "-q", "wrk"],
                     ["apt-get", "update", "-q"],
                     ["apt-get", "install", "-y", "-q", "wrk"]):
            log("wrk missing: " + " ".join(step))
            subprocess.run(step, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            path = shutil.which("wrk")
            if path:
                return path
    raise WrkMissing(INSTALL_HINT)


@dataclass
class WrkResult:
    """One wrk run. Latencies in µs; `statuses` only when status counting was on."""

    requests: int
    duration_s: float
    latency_us: dict[str, float]
    errors: dict[str, int]
    statuses: dict[int, int] = field(default_factory=dict)
    wrk_rps: float | None = None
    """wrk's own `Requests/sec:` line (same figure, kept as a cross-check)."""
    wrk_cpu_s: float | None = None
    """CPU time wrk itself used (user + sys): shows the load generator was not the limit."""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def non_2xx(self) -> int:
        """Responses with a status >= 400 (wrk's errors.status)."""
        return self.errors.get("status", 0)

    @property
    def ok(self) -> int:
        """200 responses: counted exactly when statuses were counted, else requests - non-2xx."""
        if self.statuses:
            return self.statuses.get(200, 0)
        return self.requests - self.non_2xx

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    def to_json(self) -> dict:
        data = asdict(self)
        data["statuses"] = {str(k): v for k, v in self.statuses.items()}
        data["rps"] = round(self.rps, 1)
        data["ok"] = self.ok
        data["non_2xx"] = self.non_2xx
        data["socket_errors"] = self.socket_errors
        return data


_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)


def parse_output(text: str) -> WrkResult:
    """Read the BENCHJSON line printed by spread.lua's `done` (and wrk's Requests/sec)."""
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise WrkFailed("wrk printed no BENCHJSON line:\n" + text[-2000:])
    raw = json.loads(line[len("BENCHJSON ") :])
    rps = _RPS.search(text)
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        latency_us={k: float(v) for k, v in raw["latency_us"].items()},
        errors={k: int(v) for k, v in raw["errors"].items()},
        statuses={int(k): int(v) for k, v in raw.get("statuses", {}).items()},
        wrk_rps=float(rps.group(1)) if rps else None,
    )


def write_paths(paths: Iterable[str], directory: Path, name: str) -> Path:
    """The paths file spread.lua cycles through."""
    target = directory / f"paths-{name}.txt"
    target.write_text("".join(p + "\n" for p in paths))
    return target


def command(
    url: str,
    paths_file: Path,
    *,
    connections: int,
    duration_s: int,
    threads: int = 1,
    count_status: bool = False,
    delay_mean_ms: float = 0.0,
    wrk: str = "wrk",
) -> list[str]:
    return [
        wrk, "-t", str(threads), "-c", str(max(connections, threads)),
        "-d", f"{max(1, int(duration_s))}s", "--timeout", "5s",
        "-s", str(SCRIPT), url, "--",
        str(paths_file), "1" if count_status else "0", f"{delay_mean_ms:.3f}",
    ]


def run(
    url: str,
    paths_file: Path,
    *,
    connections: int,
    duration_s: int,
    threads: int = 1,
    count_status: bool = False,
    delay_mean_ms: float = 0.0,
    cpus: set[int] | None = None,
    wrk: str = "wrk",
) -> WrkResult:
    """Run wrk once (pinned to `cpus` when given) and parse its result."""
    cmd = command(
        url, paths_file, connections=connections, duration_s=duration_s, threads=threads,
        count_status=count_status, delay_mean_ms=delay_mean_ms, wrk=wrk,
    )
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        # wait4 rather than wait: it also returns wrk's CPU usage
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise WrkFailed(f"wrk exited with {proc.returncode}:\n{text[-2000:]}")
    result = parse_output(text)
    result.wrk_cpu_s = usage.ru_utime + usage.ru_stime
    return result
