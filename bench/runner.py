"""One bench run: processes up, tenants seeded, measurements in a fixed order.

Every API measurement is one half of a pair: the bare handler measured under the same
load right before or after it (bench/disturbance.py judges each pair on its own).
Order: concurrency sweep (a pair per concurrency, for the plot), more headline pairs,
a pair per scenario at the headline concurrency (which half goes first alternates, so
drift cancels), the half-load latency pair, then an optional profile of the API worker
under load. Each measurement is preceded by a short warm-up run of the same load, and
API measurements are bracketed by a Redis stats window. Each records the CPU that
other processes used and that the hypervisor stole meanwhile (bench/cpustat.py); a pair
with a disturbed half is measured again, up to --noise-retries times.
"""

from __future__ import annotations

import base64
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from bench import profiling, redisstats, seeding, wrk
from bench.analysis import median, summarise
from bench.cpustat import HostCpu, cpu_seconds
from bench.disturbance import Limits, measurement_reasons
from bench.scenarios import HEADLINE, Options, Scenario
from bench.servers import REPO, Placement, Uvicorn, start_valkey
from rotator.crypto import KeyRing

Log = Callable[[str], None]


class Progress:
    """One line per step, prefixed with the elapsed time."""

    def __init__(self, stream: Any = None) -> None:
        self.started = time.monotonic()
        self.stream = stream or sys.stdout

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed_s:6.1f}s] {message}", file=self.stream, flush=True)


@dataclass
class Target:
    name: str  # "bare" | "api" | a baseline: "floor" | "raw" (bench/baselines.py)
    server: Uvicorn


BASELINES = {
    "floor": "bench.baselines:create_floor_app",
    "raw": "bench.baselines:create_raw_app",
}
"""The floors /v1/next is compared with (bench/baselines.py), served like the API."""


def _fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


class Bench:
    """Holds the processes and the measurements of one run."""

    def __init__(self, opts: Options, log: Log, workdir: Path) -> None:
        self.opts = opts
        self.log = log
        self.workdir = workdir
        self.placement = Placement.plan(pin=opts.pin, workers=opts.workers)
        self.cpus = self.placement.cpus()
        """The CPUs the bench's processes run on: steal on these disturbs a measurement."""
        self.limits = Limits(
            max_other_cpu=opts.max_other_cpu,
            max_steal_cpu=opts.max_steal_cpu,
            max_baseline_spread=opts.max_baseline_spread,
        )
        self.measurements: list[dict] = []
        self.baselines: list[dict] = []
        """Rows of the floor and raw targets: unpaired, kept out of `measurements`."""
        self._pairs = 0
        self.internal_names = redisstats.script_commands()
        self.paths: dict[tuple[str, str, bool], Path] = {}
        self.populations: dict[str, seeding.Population] = {}

    # ----- setup

    def setup(self, stack: contextlib.ExitStack) -> dict:
        opts = self.opts
        self.wrk = wrk.ensure_wrk(install=opts.install_wrk, log=self.log)
        self.log(f"placement: {self.placement.describe()}")
        valkey = start_valkey(self.workdir / "valkey", self.placement.valkey, opts.valkey_nice)
        stack.callback(valkey.stop)
        self.valkey = valkey
        self.r = redis.Redis.from_url(valkey.url)
        stack.callback(self.r.close)
        self.log(f"valkey {valkey.url} (appendonly yes, appendfsync everysec)")

        master_key = base64.b64encode(os.urandom(32)).decode()
        ring = KeyRing.parse(master_key)
        many, seed_report = seeding.seed(self.r, ring, opts.tenants, name="many")
        self.log(
            f"seeded {opts.tenants:,} tenants, {seed_report.keys:,} keys in "
            f"{seed_report.seconds:.1f}s: {seed_report.bytes_per_tenant:,.0f} B/tenant, "
            f"{seed_report.bytes_per_key:,.0f} B/key"
        )
        one, _ = seeding.seed(self.r, ring, 1, name="one")
        demo, _ = seeding.seed(self.r, ring, 1, name="demo", demo=True)
        self.populations = {"many": many, "one": one, "demo": demo}

        env = {
            "ROTATOR_REDIS_URL": valkey.url,
            "ROTATOR_MASTER_KEY": master_key,
            "ROTATOR_DATA_DIR": str(self.workdir / "api"),
            "ROTATOR_LOG_LEVEL": "WARNING",
        }
        logs = self.workdir / "logs"
        logs.mkdir()
        self.bare = Target(
            "bare",
            Uvicorn(
                "bench.bare_app:create_app",
                env=env,
                workers=opts.workers,
                cpus=self.placement.api,
                log_path=logs / "bare.log",
                server=opts.server,
            ),
        )
        # as `rotator serve` runs it: metrics in multi-process mode (rotator/metrics/directory.py)
        metrics_dir = self.workdir / "metrics"
        metrics_dir.mkdir()
        api_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        api_env.update(item.split("=", 1) for item in opts.api_env)  # type: ignore[misc]
        self.api = Target(
            "api",
            Uvicorn(
                "rotator.api.app:create_app_from_env",
                env=api_env,
                workers=opts.workers,
                cpus=self.placement.api,
                log_path=logs / "api.log",
                server=opts.server,
            ),
        )
        self.floors = [
            Target(
                name,
                Uvicorn(
                    factory,
                    env=env,
                    workers=opts.workers,
                    cpus=self.placement.api,
                    log_path=logs / f"{name}.log",
                    server=opts.server,
                ),
            )
            for name, factory in BASELINES.items()
        ]
        for target in (self.bare, self.api, *self.floors):
            target.server.start()
            stack.callback(target.server.stop)
            self.log(f"{target.name} up at {target.server.base_url} ({opts.workers} worker(s))")
        return seed_report.to_json()

    def wait_quiet(self) -> None:
        """Wait (up to --wait-quiet seconds) until other processes and the hypervisor leave
        the CPUs alone (ours are idle meanwhile: all the busy time is someone else's)."""
        deadline = time.monotonic() + self.opts.wait_quiet_s
        last_log = 0.0
        while self.opts.wait_quiet_s > 0:
            before = HostCpu.sample()
            time.sleep(2.0)
            after = HostCpu.sample()
            busy = (after.busy_s - before.busy_s) / 2.0
            stolen = (after.steal_on(self.cpus) - before.steal_on(self.cpus)) / 2.0
            if busy <= self.opts.max_other_cpu and stolen <= self.opts.max_steal_cpu:
                return
            state = f"other processes use {busy:.2f} cores, the hypervisor steals {stolen:.2f}"
            if time.monotonic() > deadline:
                self.log(f"{state}: measuring anyway")
                return
            if time.monotonic() - last_log > 30:
                self.log(f"waiting for a quiet machine ({state})")
                last_log = time.monotonic()

    def paths_for(self, scenario: Scenario) -> Path:
        key = (scenario.population, scenario.service, scenario.masked)
        if key not in self.paths:
            population = self.populations[scenario.population]
            name = f"{scenario.population}-{scenario.service}{'-masked' if scenario.masked else ''}"
            self.paths[key] = wrk.write_paths(
                population.paths(scenario.service, masked=scenario.masked), self.workdir, name
            )
        return self.paths[key]

    # ----- one measurement

    def pair(
        self,
        step: str,
        scenario: Scenario,
        connections: int,
        *,
        api_first: bool = False,
        delay_mean_ms: dict[str, float] | None = None,
    ) -> tuple[dict, dict]:
        """The API and the bare handler under the same load, one right after the other:
        (api row, bare row), both carrying the same `pair`. Taken again while a half was
        disturbed (bench/disturbance.py, rule 1), up to --noise-retries times; the least
        disturbed attempt is kept."""
        order = (self.api, self.bare) if api_first else (self.bare, self.api)
        delays = delay_mean_ms or {}
        best: tuple[float, dict[str, dict], int] | None = None
        for attempt in range(1 + self.opts.noise_retries):
            rows = {
                t.name: self.measure(step, t, scenario, connections, delays.get(t.name, 0.0))
                for t in order
            }
            reasons = [
                f"{name}: {reason}"
                for name, row in rows.items()
                for reason in measurement_reasons(row, self.limits)
            ]
            noise = sum(row["other_cpu"] + row["steal_cpu"] for row in rows.values())
            if best is None or noise < best[0]:
                best = (noise, rows, attempt + 1)
            if not reasons:
                break
            if attempt < self.opts.noise_retries:
                self.log(f"    disturbed ({'; '.join(reasons)}): measuring the pair again")
                time.sleep(0.3)
        assert best is not None
        _, rows, attempts = best
        self._pairs += 1
        for target in order:
            row = rows[target.name]
            row["pair"], row["attempts"] = self._pairs, attempts
            self.measurements.append(row)
        return rows["api"], rows["bare"]

    def measure(
        self, step: str, target: Target, scenario: Scenario, connections: int, delay_ms: float
    ) -> dict:
        """Warm up, then measure one target."""
        paths = self.paths_for(scenario)
        run = dict(
            connections=connections, count_status=scenario.count_status,
            delay_mean_ms=delay_ms, cpus=self.placement.load, wrk=self.wrk,
        )  # fmt: skip
        url = target.server.base_url + "/v1/next"
        if self.opts.warmup_s > 0:
            wrk.run(url, paths, duration_s=self.opts.warmup_s, **run)  # type: ignore[arg-type]
            time.sleep(0.3)  # requests still in flight at the API land before the window
        return self._once(step, target, scenario, connections, delay_ms, url, paths, run)

    def _once(
        self,
        step: str,
        target: Target,
        scenario: Scenario,
        connections: int,
        delay_mean_ms: float,
        url: str,
        paths: Path,
        run: dict,
    ) -> dict:
        is_api = target.name == "api"
        window = redisstats.begin(self.r) if is_api else None
        pids = target.server.worker_pids()
        valkey_pid = [self.valkey.process.pid] if self.valkey.process else []
        server0, valkey0, host0 = cpu_seconds(pids), cpu_seconds(valkey_pid), HostCpu.sample()
        result = wrk.run(url, paths, duration_s=self.opts.duration_s, **run)
        server_s = cpu_seconds(pids) - server0
        valkey_s = cpu_seconds(valkey_pid) - valkey0
        host1 = HostCpu.sample()
        host_s, irq_s = host1.busy_s - host0.busy_s, host1.irq_s - host0.irq_s
        steal_s = host1.steal_on(self.cpus) - host0.steal_on(self.cpus)
        cost = redisstats.end(self.r, window, self.internal_names) if window else None
        if cost is not None:
            cost.per_delivery(result.ok, result.requests)
        wall = result.duration_s
        row = {
            "step": step,
            "target": target.name,
            "scenario": scenario.name if is_api else target.name,
            "connections": connections,
            "delay_mean_ms": round(delay_mean_ms, 3),
            **result.to_json(),
            "server_cpu_util": round(server_s / wall / self.opts.workers, 3),
            "wrk_cpu_util": round((result.wrk_cpu_s or 0) / wall, 3),
            "valkey_cpu_util": round(valkey_s / wall, 3),
            # server CPU per request: less sensitive to other load than requests/s
            "server_cpu_us_per_request": round(server_s * 1e6 / max(result.requests, 1), 2),
            "irq_cpu": round(irq_s / wall, 3),
            # process CPU of the whole host not spent by wrk, the server under test or
            # Valkey: other processes on a shared machine, the noise figure
            "other_cpu": round(
                max(0.0, host_s - server_s - valkey_s - (result.wrk_cpu_s or 0)) / wall, 3
            ),
            # time the hypervisor gave another VM while ours wanted the CPU, in cores
            "steal_cpu": round(max(0.0, steal_s) / wall, 3),
            "redis": cost.to_json() if cost else None,
        }
        lat = result.latency_us
        extra = ""
        if cost is not None:
            mostly_ok = result.ok >= result.requests / 2
            commands = (
                f"{cost.per['commands_per_delivery']:.2f} cmd/delivery"
                if mostly_ok
                else f"{cost.per['commands_per_request']:.2f} cmd/request"
            )
            extra = (
                f", {commands}, script "
                f"{cost.script_usec_per_call:.1f} µs, "
                f"{cost.per['script_calls_per_read']:.2f} calls/read, Redis CPU "
                f"{cost.per['cpu_us_per_request']:.1f} µs/req"
            )
        if result.statuses:
            counts = sorted(result.statuses.items())
            extra += ", statuses " + ", ".join(f"{k}:{v}" for k, v in counts)
        elif result.non_2xx:
            extra += f", {result.non_2xx} non-2xx"
        if result.socket_errors:
            extra += f", socket errors {result.errors}"
        self.log(
            f"{step:<8} {row['scenario']:<14} c={connections:<3} {result.rps:>9,.0f} req/s  "
            f"p50 {_fmt_ms(lat['p50'])}  p99 {_fmt_ms(lat['p99'])}  CPU: server "
            f"{row['server_cpu_util']:.0%} wrk {row['wrk_cpu_util']:.0%} valkey "
            f"{row['valkey_cpu_util']:.0%} other {row['other_cpu']:.2f} steal "
            f"{row['steal_cpu']:.2f}{extra}"
        )
        if scenario.expect_ok and is_api and result.non_2xx:
            self.log(f"WARNING: {result.non_2xx} non-2xx answers in {scenario.name}; see logs")
        return row

    # ----- steps

    def sweep(self) -> None:
        for c in self.opts.sweep:
            self.pair("sweep", HEADLINE, c)

    def headline(self) -> None:
        c = self.opts.connections
        extra = self.opts.repeats - (1 if c in self.opts.sweep else 0)
        for i in range(max(0, extra)):
            self.pair("headline", HEADLINE, c, api_first=i % 2 == 0)

    def scenarios(self) -> None:
        c = self.opts.connections
        for i, scenario in enumerate(self.opts.selected()):
            if scenario.subscribed:
                seeding.subscribe(self.r, self.populations[scenario.population], ",key.delivered,")
            try:
                # the bare handler under the same requests (it reads the same query)
                self.pair("scenario", scenario, c, api_first=i % 2 == 0)
            finally:
                if scenario.subscribed:
                    seeding.subscribe(self.r, self.populations[scenario.population], "")

    def floors_step(self) -> None:
        """The routing floor and the raw ASGI callable at 1 connection and at the headline's,
        right after the headline pairs (same requests: they ignore them)."""
        for c in sorted({1, self.opts.connections}):
            for target in self.floors:
                row = self.measure("baseline", target, HEADLINE, c, 0.0)
                self.baselines.append(row)

    def halfload(self) -> None:
        """Both targets paced to half the API's max throughput: p99 at the same offered load."""
        c = self.opts.connections
        api_max = median([m["rps"] for m in self._headline_rows("api")])
        if not api_max:
            return
        rate = api_max / 2
        delays = {}
        for target in (self.api, self.bare):
            # a connection's cycle is its wait plus the answer's latency (unloaded: the c=1 mean)
            unloaded_us = median(
                [
                    m["latency_us"]["mean"]
                    for m in self.measurements
                    if m["target"] == target.name and m["connections"] == 1 and m["step"] == "sweep"
                ]
            )
            delays[target.name] = max(0.0, c / rate * 1000 - (unloaded_us or 0) / 1000)
        self.pair("halfload", HEADLINE, c, api_first=True, delay_mean_ms=delays)
        # the routing floor under the same offered load
        floor = self.floors[0]
        unloaded_us = median(
            [m["latency_us"]["mean"] for m in self.baselines
             if m["target"] == floor.name and m["connections"] == 1]
        )  # fmt: skip
        delay = max(0.0, c / rate * 1000 - (unloaded_us or 0) / 1000)
        self.baselines.append(self.measure("halfload", floor, HEADLINE, c, delay))

    def _headline_rows(self, target: str) -> list[dict]:
        c = self.opts.connections
        return [
            m
            for m in self.measurements
            if m["target"] == target
            and m["scenario"] in ("usage", "bare")
            and m["connections"] == c
            and m["step"] in ("sweep", "headline")
        ]

    def profile(self) -> dict | None:
        spy = profiling.py_spy()
        if spy is None:
            self.log("profile skipped: py-spy not installed (pip install py-spy)")
            return None
        c = self.opts.connections
        duration = self.opts.profile_s
        paths = self.paths_for(HEADLINE)
        cmd = wrk.command(
            self.api.server.base_url + "/v1/next",
            paths,
            connections=c,
            duration_s=duration + 3,
            wrk=self.wrk,
        )
        load_cpus = self.placement.load
        load = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, load_cpus)) if load_cpus else None,
        )
        try:
            time.sleep(1.0)
            raw = profiling.record(
                spy,
                self.api.server.worker_pids(),
                duration,
                self.workdir / "profile.txt",
                cpus=self.placement.load,
            )
        finally:
            load.wait()
        summary = profiling.summarise(raw)
        self.log(f"profile: {summary['samples']:,} samples of the API worker under c={c} load")
        for row in summary["self"][:5]:
            self.log(f"    {row['percent']:5.1f}% self  {row['frame']}")
        return summary

    def memory_after_load(self) -> dict:
        day = int(self.r.time()[0]) // 86_400
        return seeding.memory_sample(self.r, self.populations["many"], day)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "-"


def _cpu_idle() -> str:
    """How an idle CPU waits (Linux cpuidle driver; on a KVM guest's haltpoll, how long it
    polls before halting). It moves the one-connection latencies by 2-3× (docs/scaling.md
    §5), so a run states it."""
    idle = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    poll = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    try:
        driver = idle.read_text().strip()
    except OSError:
        return "-"
    with contextlib.suppress(OSError):
        if driver == "haltpoll":
            return f"haltpoll, guest_halt_poll_ns {poll.read_text().strip()}"
    return driver


def _git() -> str:
    """HEAD, and the served code's files that differ from it (the bench runs the work tree)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rotator", "scripts"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "-"
    changed = sorted(line[3:] for line in dirty.splitlines() if line[3:])
    return rev + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def environment(bench: Bench) -> dict:
    wrk_version = subprocess.run([bench.wrk, "-v"], capture_output=True, text=True)
    server = bench.r.info("server")
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "cpu_idle": _cpu_idle(),
        "python": platform.python_version(),
        "litestar": _version("litestar"),
        "uvicorn": _version("uvicorn"),
        "server": bench.api.server.server,
        "granian": _version("granian"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "msgspec": _version("msgspec"),
        "valkey": server.get("valkey_version") or server.get("redis_version"),
        "wrk": (wrk_version.stdout or wrk_version.stderr).splitlines()[0].split(" Copyright")[0],
        "git": _git(),
        "placement": bench.placement.describe(),
        "api_command": " ".join(
            Path(a).name if i == 0 else a for i, a in enumerate(bench.api.server.command())
        ),
    }


def run(opts: Options, log: Log | None = None) -> dict:
    """Run the whole bench; returns the results (JSON-ready, with a `summary`)."""
    log = log or Progress()
    started = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="keyrotator-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        bench = Bench(opts, log, Path(tmp))
        seed = bench.setup(stack)
        env = environment(bench)
        bench.wait_quiet()
        bench.sweep()
        bench.headline()
        bench.floors_step()
        bench.scenarios()
        if opts.halfload:
            bench.halfload()
        memory = bench.memory_after_load()
        profile = bench.profile() if opts.profile else None
    results = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1),
            "quick": opts.quick,
            "options": {
                "duration_s": opts.duration_s,
                "warmup_s": opts.warmup_s,
                "sweep": list(opts.sweep),
                "connections": opts.connections,
                "tenants": opts.tenants,
                "workers": opts.workers,
                "repeats": opts.repeats,
                "noise_retries": opts.noise_retries,
                "max_other_cpu": opts.max_other_cpu,
                "max_steal_cpu": opts.max_steal_cpu,
                "max_baseline_spread": opts.max_baseline_spread,
                "wrk_threads": 1,
                "pin": opts.pin,
                "scenarios": list(opts.scenarios),
                "server": opts.server,
            },
            "environment": env,
        },
        "seed": seed,
        "memory_sample": memory,
        "measurements": bench.measurements,
        "baselines": bench.baselines,
        "profile": profile,
    }
    results["summary"] = summarise(results)
    return results
