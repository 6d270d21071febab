"""Whether a run can be believed, and which of its measurements: the rules, on JSON alone.

On a shared machine or a VM the same run can measure anything from the truth to half of
it: another process takes a core, the hypervisor runs another VM on ours, a neighbour
fills the caches. A quick run once reported the API at 204% of the bare handler and 278
workers for 1M deliveries/s. So every figure is judged before it is believed:

1. A measurement is disturbed when, during it, other processes on the machine used more
   than `max_other_cpu` cores, or the hypervisor stole more than `max_steal_cpu` cores
   from the CPUs the bench runs on (bench/cpustat.py).
2. Every API measurement is paired with a bare-handler measurement of the same load taken
   right before or after it, and compared within its pair only. A pair is disturbed when
   either half is, or, at the headline concurrency (where the bare handler is measured
   in every pair), when its bare handler's req/s is more than `max_baseline_spread` away
   from the median of the undisturbed ones: the machine ran at another speed during that
   pair, for a reason no counter shows (a neighbour's cache and memory traffic, frequency).
3. The run is unreliable when the bare handler's req/s at the headline concurrency varied
   by more than `max_baseline_spread` across the run ((max - min) / median, over the
   measurements rule 1 left alone: the machine's speed changed and nobody can say which
   speed was the real one), or when fewer than half of its headline pairs, or of all its
   pairs, are undisturbed. Its report says so first, and gives its figures without any
   verdict on a timing goal and without a capacity table.

Results written before pairs existed (no `pair` field) are paired by order, as they were
measured: a bare and an API row of the same step and concurrency, one after the other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

HEADLINE_STEPS = ("sweep", "headline")
BASELINE_STEPS = ("sweep", "headline", "scenario")
"""Steps whose bare measurements run unpaced at full load: comparable with each other."""


@dataclass(frozen=True)
class Limits:
    max_other_cpu: float = 0.15
    """Cores other processes may use during a measurement."""
    max_steal_cpu: float = 0.05
    """Cores the hypervisor may steal from the bench's CPUs during a measurement."""
    max_baseline_spread: float = 0.15
    """How much (relative to the median) the bare handler's req/s may vary across a run.
    Quiet runs on the 2-vCPU VM of bench/results varied 1-8.4%."""

    @classmethod
    def of(cls, options: dict[str, Any]) -> Limits:
        defaults = cls()
        return cls(**{k: options.get(k, getattr(defaults, k)) for k in asdict(defaults)})


def measurement_reasons(row: dict, limits: Limits) -> list[str]:
    """Rule 1: why one measurement is disturbed (empty: it is not)."""
    reasons = []
    other = row.get("other_cpu") or 0.0
    steal = row.get("steal_cpu") or 0.0
    if other > limits.max_other_cpu:
        reasons.append(f"other processes used {other:.2f} cores")
    if steal > limits.max_steal_cpu:
        reasons.append(f"the hypervisor stole {steal:.2f} cores")
    return reasons


@dataclass
class Pair:
    id: Any
    step: str
    connections: int
    api: dict | None
    bare: dict | None

    @property
    def scenario(self) -> str:
        return self.api["scenario"] if self.api else "bare"

    @property
    def ratio(self) -> float | None:
        if self.api and self.bare and self.bare["rps"]:
            return self.api["rps"] / self.bare["rps"]
        return None


def pairs(measurements: list[dict]) -> list[Pair]:
    """The run's pairs, in measurement order (an unpaired row is a pair with one half)."""
    found: dict[Any, Pair] = {}
    for row, key in zip(measurements, _pair_ids(measurements), strict=True):
        pair = found.setdefault(key, Pair(key, row["step"], row["connections"], None, None))
        if row["target"] == "api":
            pair.api = row
        else:
            pair.bare = row
    return list(found.values())


def _pair_ids(measurements: list[dict]) -> list[Any]:
    """Each row's `pair`; for rows written before pairs existed, a bare and an API row of
    the same step and concurrency measured one after the other share one."""
    ids: list[Any] = [m.get("pair") for m in measurements]
    i = 0
    while i < len(measurements):
        if ids[i] is not None:
            i += 1
            continue
        row, ids[i] = measurements[i], f"legacy-{i}"
        if i + 1 < len(measurements) and ids[i + 1] is None:
            nxt = measurements[i + 1]
            if (nxt["step"], nxt["connections"]) == (row["step"], row["connections"]) and (
                nxt["target"] != row["target"]
            ):
                ids[i + 1] = ids[i]
                i += 1
        i += 1
    return ids


def judge(results: dict) -> dict:
    """Rules 1-3 applied to a run: the judgement the summary and the report use."""
    options = results["meta"]["options"]
    limits = Limits.of(options)
    c = options["connections"]
    run_pairs = pairs(results["measurements"])

    visible = {
        id(p): [
            f"{half}: {reason}"
            for half, m in (("bare", p.bare), ("API", p.api))
            if m is not None
            for reason in measurement_reasons(m, limits)
        ]
        for p in run_pairs
    }
    eligible = [p for p in run_pairs
                if p.bare and p.step in BASELINE_STEPS and p.connections == c]  # fmt: skip
    # the baseline is what the machine did when nothing visible disturbed it
    bares = [p.bare["rps"] for p in eligible if not visible[id(p)]]  # type: ignore[index]
    bares = bares or [p.bare["rps"] for p in eligible]  # type: ignore[index]
    baseline = None
    if bares:
        mid = median(bares)
        baseline = {
            "connections": c, "runs": len(bares), "median_rps": mid,
            "min_rps": min(bares), "max_rps": max(bares),
            "spread": (max(bares) - min(bares)) / mid if mid else None,
        }  # fmt: skip

    judged = []
    for pair in run_pairs:
        reasons = list(visible[id(pair)])
        if baseline and pair.bare and pair.step in BASELINE_STEPS and pair.connections == c:
            off = pair.bare["rps"] / baseline["median_rps"] - 1 if baseline["median_rps"] else 0
            if abs(off) > limits.max_baseline_spread:
                reasons.append(f"bare handler {off:+.0%} off its median")
        judged.append({
            "pair": pair.id,
            "step": pair.step, "scenario": pair.scenario, "connections": pair.connections,
            "bare_rps": pair.bare["rps"] if pair.bare else None,
            "api_rps": pair.api["rps"] if pair.api else None,
            "ratio": pair.ratio, "disturbed": bool(reasons), "reasons": reasons,
        })  # fmt: skip

    headline = [
        j for j, p in zip(judged, run_pairs, strict=True)
        if p.step in HEADLINE_STEPS and p.connections == c and p.api and p.bare
    ]  # fmt: skip
    counts = {
        "headline": _count(headline),
        "all": _count([j for j in judged if j["api_rps"] is not None]),
    }
    reasons = []
    if counts["headline"]["total"] == 0:
        reasons.append("no headline pair was measured")
    if baseline and (baseline["spread"] or 0) > limits.max_baseline_spread:
        reasons.append(
            f"the bare handler's rate varied {baseline['spread']:.0%} across the run (limit "
            f"{limits.max_baseline_spread:.0%})"
        )
    for name, what in (("headline", "headline pairs"), ("all", "pairs")):
        total, clean = counts[name]["total"], counts[name]["clean"]
        if total and clean < math.ceil(total / 2):
            reasons.append(f"{total - clean} of {total} {what} disturbed")
    others = [m.get("other_cpu") or 0.0 for m in results["measurements"]]
    steals = [m.get("steal_cpu") or 0.0 for m in results["measurements"]]
    return {
        "limits": asdict(limits),
        "baseline": baseline,
        "pairs": judged,
        "counts": counts,
        "max_other_cpu": max(others) if others else None,
        "max_steal_cpu": max(steals) if steals else None,
        "reliable": not reasons,
        "reasons": reasons,
    }


def _count(judged: list[dict]) -> dict[str, int]:
    return {"total": len(judged), "clean": sum(not j["disturbed"] for j in judged)}
