"""Measure what the AOF fsync policy costs and risks on the delivery path, on this host.

    .venv/bin/python deploy/measure_durability.py [--seconds 5] [--rounds 2] [--trials 5]

Three measurements, each on its own bundled valkey-server and `uvicorn` API process
(one worker), loaded with wrk (Debian package `wrk`) over one tenant's /v1/next:

1. throughput: `appendfsync always` vs `everysec`, interleaved rounds in the same run,
   same load; reports req/s, p50/p99 and the always/everysec ratio.
2. fsync cadence under everysec: strace timestamps of the server's fdatasync calls
   during load, so the window of acknowledged-but-not-yet-fsynced deliveries (what a
   host crash or power cut can lose) is a measured interval, not a quote of the docs.
3. kill -9 of Valkey mid-load (a process crash), restart on the same AOF: the usage
   counter against the 200s wrk saw, per trial.

Prints a Markdown report and writes the figures as JSON (--json PATH). docs/scaling.md
quotes a run of it. Not part of `make test`: it takes about a minute and is timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rotator.crypto import KeyRing  # noqa: E402
from rotator.embedded import EmbeddedValkey, free_port  # noqa: E402
from rotator.settings import Settings  # noqa: E402
from rotator.store import connection, keys, services, tenants  # noqa: E402

SECRET = "sk-proj-durability-0123456789abcdefghijWXYZ"


# --- processes -------------------------------------------------------------------------------
@dataclass
class Target:
    """One Valkey with one API process in front of it, and a seeded tenant."""

    valkey: EmbeddedValkey
    api: subprocess.Popen[bytes]
    url: str
    tenant: str
    token: str


def start_api(redis_url: str, master_key: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        ROTATOR_REDIS_URL=redis_url, ROTATOR_MASTER_KEY=master_key, ROTATOR_REDIS_TIMEOUT_MS="500"
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "rotator.api.app:create_app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        env=env, cwd=REPO, stdin=subprocess.DEVNULL, stderr=log.open("ab"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/healthz", timeout=1) as r,
        ):
            if r.status == 200:
                return api, url
        if api.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the API did not come up")
        time.sleep(0.05)


async def seed(redis_url: str, ring: KeyRing) -> tuple[str, str]:
    settings = Settings(redis_url=redis_url, master_key=ring)
    r = connection.connect(settings)
    d = connection.Durability()
    try:
        t = await tenants.create_tenant(r, d, name="durability", demo=False, now_ms=0)
        tid = t.record.id
        await services.create_service(r, d, tid, slug="openai", policy="usage", now_ms=0)
        for n in range(3):
            await services.add_key(
                r, d, ring, tid, "openai", label=f"k{n}", secret=SECRET, now_ms=0
            )
    finally:
        await r.aclose()
    return tid, t.client_token


@contextlib.contextmanager
def target(workdir: Path, fsync: str, master_key: str) -> Iterator[Target]:
    valkey = EmbeddedValkey(workdir, extra_args=("--appendfsync", fsync))
    valkey.start()
    api = None
    try:
        tenant, token = asyncio.run(seed(valkey.url, KeyRing.parse(master_key)))
        # one warning per 503 while Valkey is down: kept out of the report
        api, url = start_api(valkey.url, master_key, workdir / "api.log")
        yield Target(valkey, api, url, tenant, token)
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        valkey.stop()


def counted(t: Target) -> int:
    import redis

    r = redis.Redis.from_url(t.valkey.url)
    try:
        return sum(
            int(r.hget(k, "s:openai") or 0) for k in r.scan_iter(keys.tag(t.tenant) + ":use:*")
        )
    finally:
        r.close()


# --- wrk -------------------------------------------------------------------------------------
@dataclass
class Load:
    requests: int
    non_2xx: int
    socket_errors: int
    rps: float
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT_MS[unit]


def wrk(t: Target, seconds: float, connections: int = 32) -> subprocess.Popen[str]:
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return subprocess.Popen(
        [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "-H", f"Authorization: Bearer {t.token}", t.url + "/v1/next?service=openai"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def parse(output: str) -> Load:
    def grab(pattern: str, default: str = "0") -> str:
        m = re.search(pattern, output, re.MULTILINE)
        return m.group(1) if m else default

    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Load(
        requests=int(grab(r"^\s+(\d+) requests in")),
        non_2xx=int(grab(r"Non-2xx or 3xx responses: (\d+)")),
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
        rps=float(grab(r"^Requests/sec:\s+([0-9.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)", "0ms")),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)", "0ms")),
    )


def run_wrk(t: Target, seconds: float, connections: int = 32) -> Load:
    out, _ = wrk(t, seconds, connections).communicate()
    return parse(out)


# --- the three measurements ------------------------------------------------------------------
def fsync_policies(
    base: Path, key: str, seconds: float, rounds: int, connections: tuple[int, ...]
) -> dict:
    """Per wrk connection count: each policy's median req/s, p50, p99, and the ratio."""
    results: dict[tuple[int, str], list[Load]] = {}
    with (
        target(base / "always", "always", key) as always,
        target(base / "everysec", "everysec", key) as everysec,
    ):
        for t in (always, everysec):
            run_wrk(t, 1)  # warm-up: connections, script cache
        for _ in range(rounds):
            for c in connections:
                for name, t in (("always", always), ("everysec", everysec)):
                    results.setdefault((c, name), []).append(run_wrk(t, seconds, c))
    summary: dict = {}
    for (c, name), loads in results.items():
        summary.setdefault(str(c), {})[name] = {
            "rps": statistics.median(x.rps for x in loads),
            "p50_ms": statistics.median(x.p50_ms for x in loads),
            "p99_ms": statistics.median(x.p99_ms for x in loads),
            "runs_rps": [round(x.rps) for x in loads],
        }
    for row in summary.values():
        row["ratio_always_to_everysec"] = row["always"]["rps"] / row["everysec"]["rps"]
    return summary


def fsync_probe(directory: Path, count: int = 200) -> dict:
    """Latency of write + fdatasync of a small append on the data dir's file system."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99) - 1]}


def fsync_cadence(base: Path, key: str, seconds: float) -> dict:
    """Intervals between the everysec server's fdatasync calls on its AOF, under load."""
    if shutil.which("strace") is None:
        return {"skipped": "strace is not installed"}
    with target(base / "cadence", "everysec", key) as t:
        assert t.valkey.process is not None
        trace = base / "strace.txt"
        load = wrk(t, seconds + 1)
        time.sleep(0.5)
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-tt", "-e", "trace=fdatasync,fsync", "-o", str(trace),
             "-p", str(t.valkey.process.pid)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(seconds)
        tracer.terminate()
        tracer.wait(10)
        load.communicate()
    stamps = []
    for line in trace.read_text().splitlines():
        m = re.search(r"(\d+):(\d+):(\d+\.\d+) f(?:data)?sync\(", line)
        if m:
            h, mnt, s = m.groups()
            stamps.append(int(h) * 3600 + int(mnt) * 60 + float(s))
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    return {
        "fsyncs": len(stamps),
        "traced_s": seconds,
        "gap_ms_median": statistics.median(gaps) if gaps else None,
        "gap_ms_max": max(gaps) if gaps else None,
    }


def kill_trials(base: Path, key: str, trials: int, seconds: float) -> list[dict]:
    """kill -9 of Valkey 40% into a wrk run, restart at 50%: counter vs 200s seen."""
    out = []
    for n in range(trials):
        with target(base / f"kill{n}", "everysec", key) as t:
            load = wrk(t, seconds, connections=32)
            time.sleep(seconds * 0.4)
            t.valkey.kill()
            killed_at = time.monotonic()
            time.sleep(seconds * 0.1)
            t.valkey.start()
            down_s = time.monotonic() - killed_at
            result = parse(load.communicate()[0])
            total = counted(t)
        out.append(
            {
                "ok_200": result.ok,
                "non_2xx": result.non_2xx,
                "socket_errors": result.socket_errors,
                "counted": total,
                "lost": max(0, result.ok - total),
                "surplus": max(0, total - result.ok),
                "down_s": round(down_s, 2),
            }
        )
    return out


def report(results: dict) -> str:
    lines = [
        "## appendfsync always vs everysec on /v1/next (one API worker)",
        "",
        "| wrk -c | policy | req/s (median) | runs | p50 ms | p99 ms | always/everysec |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, row in results["policies"].items():
        for name in ("always", "everysec"):
            x = row[name]
            ratio = f"{row['ratio_always_to_everysec']:.2f}" if name == "always" else ""
            lines.append(
                f"| {c} | {name} | {x['rps']:,.0f} | {x['runs_rps']} | {x['p50_ms']:.2f} | "
                f"{x['p99_ms']:.2f} | {ratio} |"
            )
    probe = results["fsync_probe"]
    lines += [
        "",
        f"write+fdatasync of 200 B on this file system: p50 {probe['p50_ms']:.3f} ms, "
        f"p99 {probe['p99_ms']:.3f} ms.",
        "",
        "## fsync cadence under everysec (strace of the server during load)",
        "",
        json.dumps(results["cadence"]),
        "",
        "## kill -9 of Valkey mid-load (everysec), restart on the same AOF",
        "",
        "| trial | 200s seen | non-2xx | counted after restart | lost | surplus | down s |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, trial in enumerate(results["kills"], 1):
        lines.append(
            f"| {n} | {trial['ok_200']:,} | {trial['non_2xx']:,} | {trial['counted']:,} | "
            f"{trial['lost']} | {trial['surplus']} | {trial['down_s']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved policy rounds")
    parser.add_argument("--trials", type=int, default=5, help="kill -9 trials")
    parser.add_argument(
        "--connections", default="1,32", help="wrk connection counts of the policy comparison"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    key = base64.b64encode(os.urandom(32)).decode()
    connections = tuple(int(c) for c in args.connections.split(","))
    with tempfile.TemporaryDirectory(prefix="rotator-durability-") as tmp:
        base = Path(tmp)
        results = {
            "policies": fsync_policies(base, key, args.seconds, args.rounds, connections),
            "fsync_probe": fsync_probe(base),
            "cadence": fsync_cadence(base, key, args.seconds),
            "kills": kill_trials(base, key, args.trials, 4.0),
            "host": {"cpus": os.cpu_count(), "data_dir": tmp},
        }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
