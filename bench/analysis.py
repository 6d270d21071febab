"""From measurements to figures: headline ratio, sweep, scenarios, half load, capacity.

Works on the JSON-ready results alone (no processes), so the report can be rebuilt
from a results file and tested on canned data. Ratios are taken within a pair (an API
measurement and the bare handler's next to it); which pairs, and whether the run as a
whole, can be believed is bench/disturbance.py's judgement.
"""

from __future__ import annotations

import math

from bench.disturbance import HEADLINE_STEPS, Pair, judge, pairs

GOAL_RATIO = 1.35
"""/v1/next's req/s over the bare `@get` handler's (issue #14; #12's goal was 0.85)."""
GOAL_VS_FLOOR = 0.60
"""/v1/next's req/s over the routing floor's (bench/baselines.py), same concurrency."""
GOAL_P50_FACTOR = 2.0
"""/v1/next's p50 at one connection over the routing floor's."""
GOAL_P99_FACTOR = 2.0
GOAL_COMMANDS = 1.0
GOAL_SCRIPT_US = 15.0
GOAL_KEY_BYTES = 1024
TARGETS = (10_000, 100_000, 1_000_000)
WORKER_UTILISATION = 0.8
SHARD_UTILISATION = 0.8


def median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _redis(rows: list[dict], field: str) -> float | None:
    return median([m["redis"].get(field) for m in rows if m.get("redis")])


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
        "steal_cpu": median([m.get("steal_cpu") for m in rows]),
        "server_cpu_us_per_request": median([m.get("server_cpu_us_per_request") for m in rows]),
        "commands_per_delivery": _redis(rows, "commands_per_delivery"),
        "commands_per_request": _redis(rows, "commands_per_request"),
        "internal_commands_per_script_call": _redis(rows, "internal_commands_per_script_call"),
        "script_usec_per_call": _redis(rows, "script_usec_per_call"),
        "redis_cpu_us_per_delivery": _redis(rows, "cpu_us_per_delivery"),
        "redis_cpu_us_per_request": _redis(rows, "cpu_us_per_request"),
        "script_calls_per_read": _redis(rows, "script_calls_per_read"),
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


def _pair_row(pair: Pair, judged: dict) -> dict:
    j = judged[pair.id]
    return {"disturbed": j["disturbed"], "reasons": j["reasons"]}


def summarise(results: dict) -> dict:
    """Every figure of the report, judged (bench/disturbance.py): an unreliable run keeps
    its figures but gets no verdict on a timing goal and no capacity table."""
    opts = results["meta"]["options"]
    c = opts["connections"]
    workers = opts["workers"]
    judgement = judge(results)
    reliable = judgement["reliable"]
    judged = {j["pair"]: j for j in judgement["pairs"]}
    run_pairs = pairs(results["measurements"])

    headline_pairs = [
        p for p in run_pairs
        if p.step in HEADLINE_STEPS and p.connections == c and p.api and p.bare
        and p.api["scenario"] == "usage"
    ]  # fmt: skip
    clean = [p for p in headline_pairs if not judged[p.id]["disturbed"]]
    used = clean or headline_pairs  # all of them when none is clean: figures, not verdicts
    bare = [p.bare for p in used if p.bare]
    api = [p.api for p in used if p.api]
    bare_rps = median([m["rps"] for m in bare])
    api_rps = median([m["rps"] for m in api])
    ratio = median([p.ratio for p in used])
    headline_row = _scenario_row("usage", api, bare_rps)
    headline_row.update(ratio=ratio, bare_rps=bare_rps, disturbed=not clean, reasons=[])
    headline = {
        "connections": c,
        "bare_rps": bare_rps,
        "api_rps": api_rps,
        "ratio": ratio,
        "pairs": [{"ratio": p.ratio, **_pair_row(p, judged)} for p in headline_pairs],
        "pairs_used": len(used),
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
    headline["meets_goal"] = None if not reliable or ratio is None else ratio >= GOAL_RATIO

    sweep = []
    for pair in run_pairs:
        if pair.step != "sweep" or not (pair.api and pair.bare):
            continue
        b, a = pair.bare, pair.api
        sweep.append({
            "connections": pair.connections,
            "bare_rps": b["rps"], "api_rps": a["rps"], "ratio": pair.ratio,
            "bare_p50_us": b["latency_us"]["p50"], "bare_p99_us": b["latency_us"]["p99"],
            "api_p50_us": a["latency_us"]["p50"], "api_p99_us": a["latency_us"]["p99"],
            "other_cpu": max(b.get("other_cpu") or 0, a.get("other_cpu") or 0),
            "steal_cpu": max(b.get("steal_cpu") or 0, a.get("steal_cpu") or 0),
            **_pair_row(pair, judged),
        })  # fmt: skip

    scenarios = [headline_row] if api else []
    for name in opts["scenarios"]:
        for pair in run_pairs:
            if pair.step == "scenario" and pair.api and pair.api["scenario"] == name:
                # its own bare half; a run from before pairs: the headline's bare median
                own_bare = pair.bare["rps"] if pair.bare else bare_rps
                row = _scenario_row(name, [pair.api], own_bare)
                row.update(bare_rps=own_bare, **_pair_row(pair, judged))
                scenarios.append(row)

    halfload = None
    half = next((p for p in run_pairs if p.step == "halfload" and p.api and p.bare), None)
    if half is not None:
        ha, hb = half.api, half.bare
        api_p99 = ha["latency_us"]["p99"]
        bare_p99 = hb["latency_us"]["p99"]
        halfload = {
            "target_rps": api_rps / 2 if api_rps else None,
            "connections": ha["connections"],
            "api_rps": ha["rps"], "bare_rps": hb["rps"],
            "api_delay_mean_ms": ha["delay_mean_ms"],
            "bare_delay_mean_ms": hb["delay_mean_ms"],
            "api_p50_us": ha["latency_us"]["p50"], "bare_p50_us": hb["latency_us"]["p50"],
            "api_p99_us": api_p99, "bare_p99_us": bare_p99,
            "api_p99_9_us": ha["latency_us"]["p99_9"],
            "bare_p99_9_us": hb["latency_us"]["p99_9"],
            "p99_factor": api_p99 / bare_p99 if bare_p99 else None,
            "goal_factor": GOAL_P99_FACTOR,
            **_pair_row(half, judged),
        }  # fmt: skip
        judgeable = reliable and not halfload["disturbed"] and halfload["p99_factor"] is not None
        halfload["meets_goal"] = halfload["p99_factor"] <= GOAL_P99_FACTOR if judgeable else None

    seed = results.get("seed") or {}
    redis_goals = {
        "commands_per_delivery": headline_row["commands_per_delivery"],
        "script_usec_per_call": headline_row["script_usec_per_call"],
        "bytes_per_key": seed.get("bytes_per_key"),
        "usage_counters_expire": (results.get("memory_sample") or {})
        .get("usage hash (today)", {})
        .get("expires"),
        # a count is a count on any machine; the script's time is a timing like the others
        "script_judged": reliable,
    }
    counts_met = bool(
        redis_goals["commands_per_delivery"] is not None
        and redis_goals["commands_per_delivery"] <= GOAL_COMMANDS
        and (redis_goals["bytes_per_key"] or 0) <= GOAL_KEY_BYTES
        and redis_goals["usage_counters_expire"] is not False
    )
    script_met = (redis_goals["script_usec_per_call"] or 0) <= GOAL_SCRIPT_US
    redis_goals["meets_goal"] = counts_met and script_met if reliable else None

    measurements = results["measurements"]
    others = [m.get("other_cpu") or 0.0 for m in measurements]
    steals = [m.get("steal_cpu") or 0.0 for m in measurements]
    noise = {
        "median_other_cpu": median(others),
        "max_other_cpu": max(others) if others else None,
        "median_steal_cpu": median(steals),
        "max_steal_cpu": max(steals) if steals else None,
        "retried": sum(1 for m in measurements if m.get("attempts", 1) > 1),
    }
    return {
        "floors": floors(results, headline, halfload, sweep, reliable),
        "reliability": judgement,
        "noise": noise,
        "headline": headline,
        "sweep": sweep,
        "scenarios": scenarios,
        "halfload": halfload,
        "redis_goals": redis_goals,
        "capacity": capacity(
            api_rps / workers if api_rps else None, headline_row["redis_cpu_us_per_delivery"]
        )
        if reliable
        else None,
    }


def floors(
    results: dict, headline: dict, halfload: dict | None, sweep: list[dict], reliable: bool
) -> dict | None:
    """/v1/next against the routing floor and the raw ASGI callable (bench/baselines.py):
    issue #14's ratios, each judged only in a reliable run. None for a run without them."""
    rows = results.get("baselines") or []
    if not rows:
        return None
    c = results["meta"]["options"]["connections"]

    def one(target: str, step: str, connections: int) -> dict | None:
        wanted = (target, step, connections)
        return next((m for m in rows if (m["target"], m["step"], m["connections"]) == wanted), None)

    floor, raw = one("floor", "baseline", c), one("raw", "baseline", c)
    floor1, raw1 = one("floor", "baseline", 1), one("raw", "baseline", 1)
    floor_half = one("floor", "halfload", c)
    api1 = next((r for r in sweep if r["connections"] == 1), None)
    api_rps = headline["api_rps"]
    out: dict = {
        "connections": c,
        "floor_rps": floor["rps"] if floor else None,
        "raw_rps": raw["rps"] if raw else None,
        "bare_rps": headline["bare_rps"],
        "api_rps": api_rps,
        "vs_bare": headline["ratio"],
        "goal_vs_bare": GOAL_RATIO,
        "vs_floor": api_rps / floor["rps"] if api_rps and floor and floor["rps"] else None,
        "goal_vs_floor": GOAL_VS_FLOOR,
        "floor_vs_raw": floor["rps"] / raw["rps"] if floor and raw and raw["rps"] else None,
        "p50_c1_us": {
            "api": api1["api_p50_us"] if api1 else None,
            "bare": api1["bare_p50_us"] if api1 else None,
            "floor": floor1["latency_us"]["p50"] if floor1 else None,
            "raw": raw1["latency_us"]["p50"] if raw1 else None,
        },
        "goal_p50_factor": GOAL_P50_FACTOR,
        "halfload_p99_us": {
            "api": halfload["api_p99_us"] if halfload else None,
            "floor": floor_half["latency_us"]["p99"] if floor_half else None,
        },
        "goal_p99_factor": GOAL_P99_FACTOR,
    }
    p50 = out["p50_c1_us"]
    out["p50_factor"] = p50["api"] / p50["floor"] if p50["api"] and p50["floor"] else None
    p99 = out["halfload_p99_us"]
    out["p99_factor"] = p99["api"] / p99["floor"] if p99["api"] and p99["floor"] else None

    def verdict(value: float | None, ok: bool) -> bool | None:
        return None if not reliable or value is None else ok

    vs_bare, vs_floor = out["vs_bare"], out["vs_floor"]
    p50_f, p99_f = out["p50_factor"], out["p99_factor"]
    out["meets"] = {
        "vs_bare": verdict(vs_bare, (vs_bare or 0) >= GOAL_RATIO),
        "vs_floor": verdict(vs_floor, (vs_floor or 0) >= GOAL_VS_FLOOR),
        "p50": verdict(p50_f, (p50_f or 0) <= GOAL_P50_FACTOR),
        "p99": verdict(p99_f, (p99_f or 0) <= GOAL_P99_FACTOR),
    }
    return out
