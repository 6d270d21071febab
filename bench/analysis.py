"""From measurements to figures: headline ratio, sweep, scenarios, half load, capacity.

Works on the JSON-ready results alone (no processes), so the report can be rebuilt
from a results file and tested on canned data.
"""

from __future__ import annotations

import math

GOAL_RATIO = 0.85
GOAL_P99_FACTOR = 2.0
GOAL_COMMANDS = 1.0
GOAL_SCRIPT_US = 15.0
GOAL_KEY_BYTES = 1024
TARGETS = (10_000, 100_000, 1_000_000)
WORKER_UTILISATION = 0.8
SHARD_UTILISATION = 0.8
DEFAULT_MAX_OTHER_CPU = 0.15


def median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _rows(results: dict, **match: object) -> list[dict]:
    return [m for m in results["measurements"] if all(m.get(k) == v for k, v in match.items())]


def _headline_rows(results: dict, target: str, c: int) -> list[dict]:
    return [
        m
        for m in results["measurements"]
        if m["target"] == target
        and m["connections"] == c
        and m["step"] in ("sweep", "headline")
        and m["scenario"] in ("usage", "bare")
    ]


def _quiet(rows: list[dict], threshold: float) -> list[dict]:
    """The runs other processes left alone (all of them when none was)."""
    quiet = [m for m in rows if (m.get("other_cpu") or 0.0) <= threshold]
    return quiet or rows


def _redis(rows: list[dict], field: str) -> float | None:
    return median([m["redis"][field] for m in rows if m.get("redis")])


def _scenario_row(name: str, rows: list[dict], bare_rps: float | None) -> dict:
    rps = median([m["rps"] for m in rows])
    requests = sum(m["requests"] for m in rows)
    ok = sum(m["ok"] for m in rows)
    return {
        "scenario": name,
        "runs": len(rows),
        "rps": rps,
        "ratio": rps / bare_rps if rps and bare_rps else None,
        "p50_us": median([m["latency_us"]["p50"] for m in rows]),
        "p90_us": median([m["latency_us"]["p90"] for m in rows]),
        "p99_us": median([m["latency_us"]["p99"] for m in rows]),
        "p99_9_us": median([m["latency_us"]["p99_9"] for m in rows]),
        "ok_fraction": ok / requests if requests else None,
        "non_2xx": sum(m["non_2xx"] for m in rows),
        "statuses": rows[-1]["statuses"] if rows else {},
        "server_cpu_util": median([m["server_cpu_util"] for m in rows]),
        "other_cpu": median([m.get("other_cpu") for m in rows]),
        "server_cpu_us_per_request": median([m.get("server_cpu_us_per_request") for m in rows]),
        "commands_per_delivery": _redis(rows, "commands_per_delivery"),
        "commands_per_request": _redis(rows, "commands_per_request"),
        "internal_commands_per_script_call": _redis(rows, "internal_commands_per_script_call"),
        "script_usec_per_call": _redis(rows, "script_usec_per_call"),
        "redis_cpu_us_per_delivery": _redis(rows, "cpu_us_per_delivery"),
        "redis_cpu_us_per_request": _redis(rows, "cpu_us_per_request"),
    }


def capacity(per_worker_rps: float | None, redis_cpu_us: float | None) -> dict | None:
    """API workers and Redis shards for each target rate, with the assumptions used."""
    if not per_worker_rps or not redis_cpu_us:
        return None
    worker_rps = per_worker_rps * WORKER_UTILISATION
    shard_rps = 1e6 / redis_cpu_us * SHARD_UTILISATION
    return {
        "per_worker_rps": per_worker_rps,
        "redis_cpu_us_per_delivery": redis_cpu_us,
        "worker_utilisation": WORKER_UTILISATION,
        "shard_utilisation": SHARD_UTILISATION,
        "shard_rps": shard_rps,
        "rows": [
            {
                "target_rps": target,
                "api_workers": math.ceil(target / worker_rps),
                "redis_shards": math.ceil(target / shard_rps),
            }
            for target in TARGETS
        ],
    }


def summarise(results: dict) -> dict:
    opts = results["meta"]["options"]
    c = opts["connections"]
    workers = opts["workers"]
    threshold = opts.get("max_other_cpu", DEFAULT_MAX_OTHER_CPU)
    bare_all = _headline_rows(results, "bare", c)
    api_all = _headline_rows(results, "api", c)
    pairs = [a["rps"] / b["rps"] for a, b in zip(api_all, bare_all, strict=False) if b["rps"]]
    bare, api = _quiet(bare_all, threshold), _quiet(api_all, threshold)
    bare_rps = median([m["rps"] for m in bare])
    api_rps = median([m["rps"] for m in api])
    headline_row = _scenario_row("usage", api, bare_rps)
    headline = {
        "connections": c,
        "bare_rps": bare_rps,
        "api_rps": api_rps,
        "ratio": api_rps / bare_rps if api_rps and bare_rps else None,
        "pair_ratios": [round(p, 3) for p in pairs],
        "runs": {"bare": len(bare_all), "api": len(api_all)},
        "quiet_runs_used": {"bare": len(bare), "api": len(api)}
        if len(bare) < len(bare_all) or len(api) < len(api_all)
        else None,
        "bare_p99_us": median([m["latency_us"]["p99"] for m in bare]),
        "api_p99_us": headline_row["p99_us"],
        "goal_ratio": GOAL_RATIO,
        "bare_cpu_us_per_request": median([m.get("server_cpu_us_per_request") for m in bare]),
        "api_cpu_us_per_request": headline_row["server_cpu_us_per_request"],
        "bare_cpu_util": median([m["server_cpu_util"] for m in bare]),
        "api_cpu_util": headline_row["server_cpu_util"],
    }
    # the same comparison by the worker's CPU per request: less sensitive to other load
    # (not to batching: per-request cost falls as more requests share a loop tick)
    bare_cpu, api_cpu = headline["bare_cpu_us_per_request"], headline["api_cpu_us_per_request"]
    headline["cpu_ratio"] = bare_cpu / api_cpu if bare_cpu and api_cpu else None
    headline["meets_goal"] = headline["ratio"] is not None and headline["ratio"] >= GOAL_RATIO

    sweep = []
    for conc in opts["sweep"]:
        b = _rows(results, step="sweep", target="bare", connections=conc)
        a = _rows(results, step="sweep", target="api", connections=conc)
        if not a or not b:
            continue
        sweep.append(
            {
                "connections": conc,
                "bare_rps": b[0]["rps"],
                "api_rps": a[0]["rps"],
                "ratio": a[0]["rps"] / b[0]["rps"] if b[0]["rps"] else None,
                "bare_p50_us": b[0]["latency_us"]["p50"],
                "bare_p99_us": b[0]["latency_us"]["p99"],
                "api_p50_us": a[0]["latency_us"]["p50"],
                "api_p99_us": a[0]["latency_us"]["p99"],
                "other_cpu": max(b[0].get("other_cpu") or 0, a[0].get("other_cpu") or 0),
            }
        )

    scenarios = [headline_row] if api else []
    for name in opts["scenarios"]:
        rows = _rows(results, step="scenario", target="api", scenario=name, connections=c)
        if rows:
            scenarios.append(_scenario_row(name, rows, bare_rps))

    halfload = None
    ha = _rows(results, step="halfload", target="api")
    hb = _rows(results, step="halfload", target="bare")
    if ha and hb:
        api_p99 = ha[0]["latency_us"]["p99"]
        bare_p99 = hb[0]["latency_us"]["p99"]
        halfload = {
            "target_rps": api_rps / 2 if api_rps else None,
            "connections": ha[0]["connections"],
            "api_rps": ha[0]["rps"],
            "bare_rps": hb[0]["rps"],
            "api_delay_mean_ms": ha[0]["delay_mean_ms"],
            "bare_delay_mean_ms": hb[0]["delay_mean_ms"],
            "api_p50_us": ha[0]["latency_us"]["p50"],
            "bare_p50_us": hb[0]["latency_us"]["p50"],
            "api_p99_us": api_p99,
            "bare_p99_us": bare_p99,
            "api_p99_9_us": ha[0]["latency_us"]["p99_9"],
            "bare_p99_9_us": hb[0]["latency_us"]["p99_9"],
            "p99_factor": api_p99 / bare_p99 if bare_p99 else None,
            "goal_factor": GOAL_P99_FACTOR,
        }
        halfload["meets_goal"] = (
            halfload["p99_factor"] is not None and halfload["p99_factor"] <= GOAL_P99_FACTOR
        )

    seed = results.get("seed") or {}
    redis_goals = {
        "commands_per_delivery": headline_row["commands_per_delivery"],
        "script_usec_per_call": headline_row["script_usec_per_call"],
        "bytes_per_key": seed.get("bytes_per_key"),
        "usage_counters_expire": (results.get("memory_sample") or {})
        .get("usage hash (today)", {})
        .get("expires"),
    }
    redis_goals["meets_goal"] = bool(
        redis_goals["commands_per_delivery"] is not None
        and redis_goals["commands_per_delivery"] <= GOAL_COMMANDS
        and (redis_goals["script_usec_per_call"] or 0) <= GOAL_SCRIPT_US
        and (redis_goals["bytes_per_key"] or 0) <= GOAL_KEY_BYTES
        and redis_goals["usage_counters_expire"] is not False
    )

    others = [m.get("other_cpu") or 0.0 for m in results["measurements"]]
    noise = {
        "median_other_cpu": median(others),
        "max_other_cpu": max(others) if others else None,
        "retried": sum(1 for m in results["measurements"] if m.get("attempts", 1) > 1),
    }
    return {
        "noise": noise,
        "headline": headline,
        "sweep": sweep,
        "scenarios": scenarios,
        "halfload": halfload,
        "redis_goals": redis_goals,
        "capacity": capacity(
            api_rps / workers if api_rps else None, headline_row["redis_cpu_us_per_delivery"]
        ),
    }
