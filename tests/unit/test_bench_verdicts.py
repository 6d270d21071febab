"""The bench's verdicts on synthetic measurements (bench/disturbance.py, analysis, report).

A clean run gets verdicts and a capacity table. A run disturbed by other processes, by
the hypervisor's steal, or by a machine whose speed changed under it (the bare handler's
own rate moving, with every counter at zero) says so first and gives neither: a quick
run on a busy VM once reported the API at 204% of the bare handler and 278 workers for
1M deliveries/s.
"""

from __future__ import annotations

import copy

import pytest

from bench import analysis, disturbance, report
from bench.cpustat import TICK_S, HostCpu
from tests.bench_results import clean_run, pair, results, row


def summarised(run: dict) -> tuple[dict, str]:
    run["summary"] = analysis.summarise(run)
    return run["summary"], report.markdown(run, None)


def disturb(run: dict, pairs: set[int], **fields: float) -> dict:
    """The same run with both halves of the given pairs carrying `fields`."""
    run = copy.deepcopy(run)
    for m in run["measurements"]:
        if m.get("pair") in pairs:
            m.update(fields)
    return run


def assert_no_timing_verdicts(summary: dict, text: str) -> None:
    assert summary["reliability"]["reliable"] is False
    assert summary["headline"]["meets_goal"] is None
    assert summary["halfload"]["meets_goal"] is None
    assert summary["redis_goals"]["meets_goal"] is None
    assert summary["capacity"] is None
    headline = text.split("## Headline\n", 1)[1]
    assert headline.lstrip().startswith("**Unreliable run: ")
    for goal in ("goal ≥ 135%: not judged", "goal ≤ 2×: not judged", "goal ≤ 15: not judged"):
        assert goal in text
    assert "| 1,000,000 |" not in text  # no capacity table
    assert "Not derived: an unreliable run" in text
    # counts are counts on any machine: still judged
    assert "goal ≤ 1.0: met" in text and "goal ≤ 1 KiB: met" in text


def test_a_clean_run_gets_verdicts_and_a_capacity_table():
    summary, text = summarised(clean_run())
    r = summary["reliability"]
    assert (r["reliable"], r["reasons"]) == (True, [])
    assert r["counts"] == {"headline": {"total": 3, "clean": 3}, "all": {"total": 7, "clean": 7}}
    head = summary["headline"]
    assert head["ratio"] == pytest.approx(16700 / 19600)  # the median pair ratio
    assert head["meets_goal"] is False  # 85%: #12's goal, short of #14's 1.35×
    assert summary["halfload"]["meets_goal"] is True
    assert summary["redis_goals"]["meets_goal"] is True
    assert summary["capacity"]["rows"][-1]["target_rps"] == 1_000_000
    assert "Unreliable" not in text
    assert "goal ≥ 135%: **not met**" in text and "| 1,000,000 |" in text
    # each scenario against its own bare half
    manual = next(s for s in summary["scenarios"] if s["scenario"] == "manual")
    assert (manual["bare_rps"], manual["ratio"]) == (19500, pytest.approx(15000 / 19500))
    assert report.headline_line(summary).startswith("headline: API 16,700 req/s = 85.2%")


def test_other_processes_on_every_headline_pair_make_the_run_unreliable():
    summary, text = summarised(disturb(clean_run(), {2, 3, 4}, other_cpu=0.6))
    assert summary["reliability"]["reasons"] == ["3 of 3 headline pairs disturbed"]
    assert_no_timing_verdicts(summary, text)
    assert "other processes used 0.60 cores" in text
    # the figures are still there, for what they are worth
    assert summary["headline"]["api_rps"] == 16700
    assert report.headline_line(summary).startswith(
        "UNRELIABLE RUN (3 of 3 headline pairs disturbed): no verdicts, no capacity table"
    )


def test_steal_counts_as_disturbance():
    summary, text = summarised(disturb(clean_run(), {1, 2, 3, 4, 5}, steal_cpu=0.2))
    assert_no_timing_verdicts(summary, text)
    assert "the hypervisor stole 0.20 cores" in text
    assert summary["noise"]["max_steal_cpu"] == 0.2


def test_a_baseline_that_moves_with_every_counter_at_zero_makes_the_run_unreliable():
    """The VM case: throughput halves and doubles while other CPU and steal read 0.00."""
    rows = [
        *pair(1, "sweep", "usage", 1, 4000, 2000),
        *pair(2, "sweep", "usage", 32, 20000, 16000),
        *pair(3, "headline", "usage", 32, 10500, 9800, api_first=True),
        *pair(4, "headline", "usage", 32, 19500, 16500),
        *pair(5, "headline", "usage", 32, 11000, 9000, api_first=True),
        *pair(6, "scenario", "manual", 32, 9800, 8000),
        *pair(7, "halfload", "usage", 32, 8100, 8000, api={"delay": 3.0}),
    ]
    summary, text = summarised(results(rows))
    r = summary["reliability"]
    assert r["max_other_cpu"] <= 0.02 and r["max_steal_cpu"] == 0
    assert r["baseline"]["spread"] == pytest.approx((20000 - 9800) / 11000)
    assert r["reasons"][0] == "the bare handler's rate varied 93% across the run (limit 15%)"
    assert "bare handler +82% off its median" in text  # pair 2's 20,000 vs 11,000
    assert_no_timing_verdicts(summary, text)
    assert "spread 92.7%" in text  # the spread is reported


def test_the_204_percent_quick_run_is_unreliable():
    """One headline pair (a quick run's sweep point) whose bare half ran at half speed."""
    rows = [
        *pair(1, "sweep", "usage", 1, 4000, 2000),
        *pair(2, "sweep", "usage", 32, 9000, 18400),
        *[r for n, name in enumerate(("manual", "time", "usage-masked"), start=3)
          for r in pair(n, "scenario", name, 32, 19000 + n * 100, 17000)],
        *pair(6, "halfload", "usage", 32, 8100, 8000, api={"delay": 3.0}),
    ]  # fmt: skip
    summary, text = summarised(results(rows, quick=True))
    assert summary["headline"]["ratio"] == pytest.approx(18400 / 9000)  # the 204%
    assert summary["reliability"]["reasons"] == [
        "the bare handler's rate varied 54% across the run (limit 15%)",
        "1 of 1 headline pairs disturbed",
    ]
    assert_no_timing_verdicts(summary, text)


def test_one_disturbed_pair_is_left_out_and_marked_and_the_run_stands():
    run = disturb(clean_run(), {3}, other_cpu=0.9)
    summary, text = summarised(run)
    assert summary["reliability"]["reliable"] is True
    head = summary["headline"]
    assert head["pairs_used"] == 2
    assert [p["disturbed"] for p in head["pairs"]] == [False, True, False]
    assert head["ratio"] == pytest.approx((16000 / 20000 + 16700 / 19600) / 2)
    assert head["meets_goal"] is False  # 82.6%: judged, on the undisturbed pairs
    assert "Medians of the 2 undisturbed of 3 interleaved pairs" in text
    assert "89.5% (disturbed)" in text
    assert summary["capacity"] is not None


def test_disturbed_sweep_points_are_marked_for_the_plot():
    summary, text = summarised(disturb(clean_run(), {1}, steal_cpu=0.3))
    marks = {r["connections"]: r["disturbed"] for r in summary["sweep"]}
    assert marks == {1: True, 32: False}
    sweep_table = text.split("## Concurrency sweep", 1)[1].split("##", 1)[0]
    assert "API: the hypervisor stole 0.30 cores" in sweep_table
    assert "UNRELIABLE" not in report._plot_title(clean_run() | {"summary": summary})


def test_a_disturbed_half_load_pair_is_not_judged():
    summary, _ = summarised(disturb(clean_run(), {7}, other_cpu=0.5))
    assert summary["reliability"]["reliable"] is True
    assert summary["halfload"]["disturbed"] is True
    assert summary["halfload"]["meets_goal"] is None


def test_results_written_before_pairs_are_paired_by_order():
    """--report-from on an old results file: adjacent bare/API rows are a pair."""
    rows = [
        row("sweep", "bare", "bare", 1, 4000, 2000), row("sweep", "api", "usage", 1, 2000, 3000),
        row("sweep", "bare", "bare", 32, 20000, 2000),
        row("sweep", "api", "usage", 32, 16000, 3000),
        row("headline", "api", "usage", 32, 17000, 3000),
        row("headline", "bare", "bare", 32, 19000, 2000),
        row("scenario", "api", "manual", 32, 15000, 3000),
        row("halfload", "api", "usage", 32, 8000, 1500, delay=3.0),
        row("halfload", "bare", "bare", 32, 8100, 1000, delay=3.5),
    ]  # fmt: skip
    run_pairs = disturbance.pairs(rows)
    assert [(p.step, p.connections, bool(p.api), bool(p.bare)) for p in run_pairs] == [
        ("sweep", 1, True, True), ("sweep", 32, True, True), ("headline", 32, True, True),
        ("scenario", 32, True, False), ("halfload", 32, True, True),
    ]  # fmt: skip
    summary, _ = summarised(results(rows))
    assert summary["reliability"]["reliable"] is True
    manual = next(s for s in summary["scenarios"] if s["scenario"] == "manual")
    assert manual["bare_rps"] == 19500  # no bare half: the headline's bare median


def test_limits_come_from_the_run_options():
    run = disturb(clean_run(max_other_cpu=1.0), {2, 3, 4}, other_cpu=0.6)
    summary, _ = summarised(run)
    assert summary["reliability"]["reliable"] is True  # 0.6 cores allowed in this run


PROC_STAT = """cpu  1000 10 300 9000 5 0 20 70 0 0
cpu0 500 5 150 4500 2 0 10 60 0 0
cpu1 500 5 150 4500 3 0 10 10 0 0
intr 12345
"""


def test_proc_stat_is_read_per_cpu():
    sample = HostCpu.sample(PROC_STAT)
    assert sample.busy_s == pytest.approx(1310 * TICK_S)
    assert sample.irq_s == pytest.approx(20 * TICK_S)
    assert sample.steal_on([0]) == pytest.approx(60 * TICK_S)
    assert sample.steal_on() == pytest.approx(70 * TICK_S)


def with_floors(run: dict) -> dict:
    """`run` with the routing floor and the raw callable measured (bench/baselines.py)."""
    run["baselines"] = [
        row("baseline", "floor", "floor", 1, 6000, 400),
        row("baseline", "raw", "raw", 1, 9000, 300),
        row("baseline", "floor", "floor", 32, 25000, 1500),
        row("baseline", "raw", "raw", 32, 40000, 1000),
        row("halfload", "floor", "floor", 32, 8000, 1000, delay=1.0),
    ]
    return run


def test_the_floors_ratios_and_their_verdicts():
    summary, text = summarised(with_floors(clean_run()))
    fl = summary["floors"]
    assert (fl["floor_rps"], fl["raw_rps"]) == (25000, 40000)
    assert fl["vs_floor"] == pytest.approx(16700 / 25000)  # the headline API median
    assert fl["floor_vs_raw"] == pytest.approx(25000 / 40000)
    assert fl["p50_c1_us"] == {"api": 750, "bare": 500, "floor": 100, "raw": 75}
    assert fl["p50_factor"] == pytest.approx(7.5)
    assert fl["p99_factor"] == pytest.approx(1500 / 1000)  # the half-load API row's p99
    assert fl["meets"] == {"vs_bare": False, "vs_floor": True, "p50": False, "p99": True}
    assert "### Against the routing floor" in text and "| raw ASGI callable | 40,000 | 75 |" in text
    assert "of the routing floor's 25,000 req/s" in report.headline_line(summary)


def test_floors_get_no_verdict_in_an_unreliable_run_and_none_without_them():
    assert summarised(clean_run())[0]["floors"] is None
    run = with_floors(disturb(clean_run(), {1, 2, 3, 4, 5, 6, 7}, other_cpu=0.9))
    fl = summarised(run)[0]["floors"]
    assert fl["vs_floor"] is not None
    assert set(fl["meets"].values()) == {None}
