"""Synthetic bench results (the JSON bench/runner.py writes), for tests of the judgement,
the summary and the report without running a load."""

from __future__ import annotations

from bench.scenarios import SCENARIO_NAMES

COST = {"commands_per_delivery": 1.0, "commands_per_request": 1.0,
        "internal_commands_per_script_call": 9.0, "script_usec_per_call": 12.5,
        "cpu_us_per_delivery": 20.0, "cpu_us_per_request": 20.0}  # fmt: skip


def row(step: str, target: str, scenario: str, c: int, rps: float, p99: float, *,
        pair: int | None = None, redis_cost: dict | None = None, delay: float = 0.0,
        statuses: dict | None = None, other_cpu: float = 0.02,
        steal_cpu: float = 0.0) -> dict:  # fmt: skip
    """One measurement; `pair` None: a row written before pairs existed."""
    requests = int(rps * 3)
    ok = requests if not statuses else statuses.get("200", 0)
    measured = {
        "step": step, "target": target, "scenario": scenario, "connections": c,
        "delay_mean_ms": delay, "requests": requests, "duration_s": 3.0, "rps": rps,
        "ok": ok, "non_2xx": requests - ok, "socket_errors": 0, "statuses": statuses or {},
        "latency_us": {"min": 50, "mean": p99 / 3, "stdev": 1, "max": p99 * 2, "p50": p99 / 4,
                       "p90": p99 / 2, "p99": p99, "p99_9": p99 * 1.5},
        "server_cpu_util": 0.99, "wrk_cpu_util": 0.3, "valkey_cpu_util": 0.2,
        "other_cpu": other_cpu, "steal_cpu": steal_cpu, "attempts": 1, "redis": redis_cost,
        "server_cpu_us_per_request": 1e6 / rps,
    }  # fmt: skip
    if pair is not None:
        measured["pair"] = pair
    return measured


def pair(n: int, step: str, scenario: str, c: int, bare_rps: float, api_rps: float, *,
         api_first: bool = False, bare: dict | None = None, api: dict | None = None,
         **common: object) -> list[dict]:  # fmt: skip
    """A bare and an API measurement of one pair; `bare`/`api`: extra row() arguments."""
    b = row(step, "bare", "bare", c, bare_rps, 2000, pair=n, **{**common, **(bare or {})})
    a = row(step, "api", scenario, c, api_rps, 3000, pair=n, redis_cost=COST,
            **{**common, **(api or {})})  # fmt: skip
    return [a, b] if api_first else [b, a]


def results(measurements: list[dict], **options: object) -> dict:
    return {
        "meta": {
            "started": "2026-03-01T12:00:00Z", "seconds": 100.0, "quick": True,
            "options": {"duration_s": 3, "warmup_s": 1, "sweep": [1, 32], "connections": 32,
                        "tenants": 10000, "workers": 1, "repeats": 2,
                        "scenarios": list(SCENARIO_NAMES), **options},
            "environment": {"cpu": "test CPU", "cpus": 2, "kernel": "6", "python": "3.11",
                            "litestar": "2", "uvicorn": "0.3", "uvloop": "0.2", "httptools": "0.6",
                            "msgspec": "0.18", "valkey": "9", "wrk": "wrk 4", "git": "abc",
                            "placement": "pinned", "api_command": "python -m uvicorn ..."},
        },
        "seed": {"tenants": 10000, "keys": 90000, "seconds": 2.0, "used_memory": {},
                 "bytes_per_tenant": 6000.0, "bytes_per_tenant_record": 600.0,
                 "bytes_per_service": 170.0, "bytes_per_key": 550.0},
        "memory_sample": {"usage hash (today)": {"keys": 50, "mean_bytes": 160.0,
                                                 "encoding": "listpack", "expires": True}},
        "measurements": measurements,
        "profile": {"samples": 10, "self": [{"frame": "f (a.py)", "samples": 10,
                                             "percent": 100.0}],
                    "inclusive": [], "components": [{"frame": "other", "samples": 10,
                                                     "percent": 100.0}]},
    }  # fmt: skip


def clean_run(**options: object) -> dict:
    """A quiet machine: every pair undisturbed, the bare handler steady within 3%."""
    rows = [
        *pair(1, "sweep", "usage", 1, 4000, 2000),
        *pair(2, "sweep", "usage", 32, 20000, 16000),
        *pair(3, "headline", "usage", 32, 19000, 17000, api_first=True),
        *pair(4, "headline", "usage", 32, 19600, 16700),
        *pair(5, "scenario", "manual", 32, 19500, 15000, api_first=True),
        *pair(6, "scenario", "demo-throttle", 32, 19800, 15000,
              api={"statuses": {"200": 10, "429": 44990}}),
        *pair(7, "halfload", "usage", 32, 8100, 8000, api_first=True,
              api={"delay": 3.0}, bare={"delay": 3.5}),
    ]  # fmt: skip
    rows[-2]["latency_us"]["p99"], rows[-1]["latency_us"]["p99"] = 1500, 1000
    return results(rows, **options)
