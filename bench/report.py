"""Writing a run: results/<stem>.json (everything), <stem>.md (the report), <stem>.png (plot)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench import plot
from bench.scenarios import HEADLINE, SCENARIOS

_TITLES = {s.name: s.title for s in (HEADLINE, *SCENARIOS)}


def stem(results: dict) -> str:
    """File name of a run: its UTC start time (and -quick for quick runs)."""
    started = time.strptime(results["meta"]["started"], "%Y-%m-%dT%H:%M:%SZ")
    name = time.strftime("%Y-%m-%d-%H%M", started)
    return name + ("-quick" if results["meta"].get("quick") else "")


def write(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write the three files; returns their paths (png absent without matplotlib)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / stem(results)
    paths = {"json": base.with_suffix(".json"), "md": base.with_suffix(".md")}
    png = base.with_suffix(".png")
    drawn = plot.write(results["summary"], png, _plot_title(results))
    if drawn:
        paths["png"] = png
    paths["json"].write_text(json.dumps(results, indent=1) + "\n")
    paths["md"].write_text(markdown(results, png.name if drawn else None))
    return paths


def _plot_title(results: dict) -> str:
    env = results["meta"]["environment"]
    opts = results["meta"]["options"]
    unreliable = "" if results["summary"]["reliability"]["reliable"] else "UNRELIABLE RUN: "
    return (
        f"{unreliable}keyrotator bench {results['meta']['started']}: {opts['workers']} "
        f"worker(s), wrk -t1, {env['cpus']} CPUs ({env['cpu']})"
    )


def headline_line(summary: dict) -> str:
    """The run's one-line result, for the terminal."""
    h = summary["headline"]
    figure = (
        f"API {_n(h['api_rps'])} req/s = {_pct(h['ratio'])} of bare {_n(h['bare_rps'])} req/s "
        f"at -c{h['connections']}"
    )
    reliability = summary["reliability"]
    if not reliability["reliable"]:
        return (
            f"UNRELIABLE RUN ({'; '.join(reliability['reasons'])}): no verdicts, no capacity "
            f"table; measured {figure}{_floors_line(summary)}"
        )
    verdict = {True: "met", False: "not met", None: "not judged"}[h["meets_goal"]]
    return f"headline: {figure} (goal ≥ {h['goal_ratio']:.0%}: {verdict}){_floors_line(summary)}"


def _floors_line(summary: dict) -> str:
    fl = summary.get("floors")
    if not fl:
        return ""
    return (
        f"; {_pct(fl['vs_floor'])} of the routing floor's {_n(fl['floor_rps'])} req/s; p50 at "
        f"-c1 {_n(fl['p50_factor'], '{:.2f}')}× the floor's; p99 at half load "
        f"{_n(fl['p99_factor'], '{:.2f}')}× the floor's"
    )


def _n(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _commands(row: dict) -> str:
    """Client commands per delivery; per request where (nearly) nothing was delivered."""
    if row["ok_fraction"] is not None and row["ok_fraction"] < 0.5:
        return _n(row["commands_per_request"], "{:.3f}") + " per request"
    return _n(row["commands_per_delivery"], "{:.3f}")


def _runs(h: dict) -> str:
    ratios = ", ".join(
        _pct(p["ratio"]) + (" (disturbed)" if p["disturbed"] else "") for p in h["pairs"]
    )
    total = len(h["pairs"])
    if all(p["disturbed"] for p in h["pairs"]):
        which = "Its one pair" if total == 1 else f"Medians of all {total} pairs"
        return f"{which}, disturbed (pair ratios: {ratios})."
    if h["pairs_used"] == total:
        return f"Medians of {total} interleaved pairs (pair ratios: {ratios})."
    return (
        f"Medians of the {h['pairs_used']} undisturbed of {total} interleaved pairs (pair "
        f"ratios: {ratios})."
    )


def _disturbed(row: dict) -> str:
    return "; ".join(row.get("reasons") or []) or "-"


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _yes(flag: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not judged"}[flag]


def _reliability(s: dict) -> str:
    """What disturbed the run, and how far the bare handler's own rate moved."""
    r = s["reliability"]
    limits, counts, base, noise = r["limits"], r["counts"], r["baseline"], s["noise"]
    parts = []
    if noise.get("max_other_cpu") is not None:
        parts.append(
            f"other processes used a median {noise['median_other_cpu']:.2f} cores (max "
            f"{noise['max_other_cpu']:.2f}; limit {limits['max_other_cpu']:.2f}) and the "
            f"hypervisor stole a median {noise.get('median_steal_cpu') or 0:.2f} (max "
            f"{noise.get('max_steal_cpu') or 0:.2f}; limit {limits['max_steal_cpu']:.2f})"
        )
    if base:
        parts.append(
            f"the bare handler at -c{base['connections']} measured {_n(base['min_rps'])}–"
            f"{_n(base['max_rps'])} req/s over {base['runs']} runs (median "
            f"{_n(base['median_rps'])}, spread {_pct(base['spread'])}; limit "
            f"{limits['max_baseline_spread']:.0%}: more makes the run unreliable, and a pair "
            "further than that from the median counts as disturbed)"
        )
    head, every = counts["headline"], counts["all"]
    parts.append(
        f"{head['total'] - head['clean']} of {head['total']} headline pairs and "
        f"{every['total'] - every['clean']} of {every['total']} pairs in all were disturbed "
        f"({noise['retried']} measured again)"
    )
    return "During the run " + "; ".join(parts) + "."


def floors_text(fl: dict) -> str:
    """Issue #14's figures: /v1/next against the bare handler, the routing floor and the raw
    ASGI callable (bench/baselines.py), measured in the same run."""
    p50, p99, meets = fl["p50_c1_us"], fl["halfload_p99_us"], fl["meets"]
    rows = [
        ["`/v1/next`", _n(fl["api_rps"]), _n(p50["api"])],
        ["bare `@get` handler", _n(fl["bare_rps"]), _n(p50["bare"])],
        ["routing floor (`@asgi`, fixed bytes)", _n(fl["floor_rps"]), _n(p50["floor"])],
        ["raw ASGI callable", _n(fl["raw_rps"]), _n(p50["raw"])],
    ]
    table = _table(
        ["app on the same server", f"req/s at -c{fl['connections']}", "p50 at -c1 (µs)"], rows
    )
    return (
        "\n### Against the routing floor\n\n"
        + table
        + "\n\n"
        + f"- req/s over the bare handler's: **{_n(fl['vs_bare'], '{:.2f}')}×** (goal ≥ "
        f"{fl['goal_vs_bare']:.2f}×: {_yes(meets['vs_bare'])})\n"
        + f"- req/s over the routing floor's: **{_pct(fl['vs_floor'])}** (goal ≥ "
        f"{fl['goal_vs_floor']:.0%}: {_yes(meets['vs_floor'])}); the floor does "
        f"{_pct(fl['floor_vs_raw'])} of the raw callable's\n"
        + f"- p50 at one connection over the floor's: **{_n(fl['p50_factor'], '{:.2f}')}×** "
        f"(goal ≤ {fl['goal_p50_factor']:.0f}×: {_yes(meets['p50'])})\n"
        + f"- p99 at half load over the floor's at the same offered load: "
        f"**{_n(fl['p99_factor'], '{:.2f}')}×** ({_ms(p99['api'])} vs {_ms(p99['floor'])} ms; "
        f"goal ≤ {fl['goal_p99_factor']:.0f}×: {_yes(meets['p99'])})\n"
    )


def markdown(results: dict, png_name: str | None) -> str:
    meta = results["meta"]
    env = meta["environment"]
    opts = meta["options"]
    s = results["summary"]
    h = s["headline"]
    out: list[str] = []
    add = out.append
    add(f"# keyrotator bench, {meta['started']}{' (quick)' if meta['quick'] else ''}\n")
    add(
        f"Run took {meta['seconds']:.0f} s. {opts['tenants']:,} tenants, {opts['workers']} API "
        f"worker(s), wrk -t1, {opts['duration_s']} s per measurement after a "
        f"{opts['warmup_s']} s warm-up. Git {env['git']}.\n"
    )

    add("## Headline\n")
    reliable = s["reliability"]["reliable"]
    if not reliable:
        add(
            f"**Unreliable run: {'; '.join(s['reliability']['reasons'])}.** Other load on "
            "this machine (other processes, the hypervisor, or a speed change the bare "
            "handler's own rate shows) disturbed the measurements, so this report judges no "
            "timing goal and derives no capacity table from them. The figures below are what "
            "was measured; disturbed ones are marked. Run again on a quiet machine "
            "(`--wait-quiet`).\n"
        )
    add(
        f"`/v1/next` (usage policy, 3 keys, unmasked, {opts['tenants']:,} tenants, one request per "
        f"tenant in turn) at wrk -c{h['connections']}: **{_n(h['api_rps'])} req/s = "
        f"{_pct(h['ratio'])} of the bare Litestar handler** ({_n(h['bare_rps'])} req/s) in the "
        f"same run; goal ≥ {h['goal_ratio']:.0%}: {_yes(h['meets_goal'])}. {_runs(h)}\n"
    )
    if h.get("cpu_ratio"):
        add(
            f"By the worker's CPU per request (less sensitive to other load on the machine): "
            f"bare {h['bare_cpu_us_per_request']:.1f} µs, API {h['api_cpu_us_per_request']:.1f} "
            f"µs: the API does {_pct(h['cpu_ratio'])} of the bare handler's requests per "
            f"CPU-second. At -c{h['connections']} the API worker was busy "
            f"{_pct(h.get('api_cpu_util'))} of the time (bare: {_pct(h.get('bare_cpu_util'))}); "
            "the rest it sat idle, its requests waiting on the Redis round trip (Valkey shares "
            "a core with wrk here; the bare handler, fed by the same wrk, has none).\n"
        )
    add(_reliability(s) + "\n")
    hl = s.get("halfload")
    if hl:
        add(
            f"p99 at half of the API's max throughput (offered ≈ {_n(hl['target_rps'])} req/s, "
            f"-c{hl['connections']} paced): **API {_ms(hl['api_p99_us'])} ms vs bare "
            f"{_ms(hl['bare_p99_us'])} ms = {_n(hl['p99_factor'], '{:.2f}')}×** (goal ≤ "
            f"{hl['goal_factor']:.0f}×: {_yes(hl['meets_goal'])}).\n"
        )
    fl = s.get("floors")
    if fl:
        add(floors_text(fl))
    rg = s["redis_goals"]
    script_met = _le(rg["script_usec_per_call"], 15.0) if rg.get("script_judged", True) else None
    add(
        f"Redis: {_n(rg['commands_per_delivery'], '{:.3f}')} client commands per delivery "
        f"(goal ≤ 1.0: {_yes(_le(rg['commands_per_delivery'], 1.0))}); script "
        f"{_n(rg['script_usec_per_call'], '{:.1f}')} µs per call (goal ≤ 15: "
        f"{_yes(script_met)}); {_n(rg['bytes_per_key'])} B per stored "
        f"provider key (goal ≤ 1 KiB: {_yes(_le(rg['bytes_per_key'], 1024))}); usage counters "
        f"expire by themselves: {_yes(rg['usage_counters_expire'])}."
        + (
            ""
            if reliable
            else " (Counts and sizes are judged: other load does not change "
            "them; the script's time is a timing.)"
        )
        + "\n"
    )
    if png_name:
        add(f"![throughput and latency against concurrency]({png_name})\n")

    add("## Setup\n")
    add(
        _table(
            ["", ""],
            [
                ["CPU", f"{env['cpu']}, {env['cpus']} CPUs, Linux {env['kernel']}"],
                ["CPU idle", env.get("cpu_idle", "-")],
                ["placement", env["placement"]],
                ["API", f"`{env['api_command']}`"],
                [
                    "bare handler",
                    "same command with `--factory bench.bare_app:create_app`: Litestar "
                    "GET /v1/next reading the same query, returning a NextKey-shaped msgspec "
                    "Struct, no Redis, no crypto",
                ],
                [
                    "Valkey",
                    f"{env['valkey']}, embedded binary, appendonly yes, appendfsync everysec",
                ],
                [
                    "load",
                    f"{env['wrk']}, 1 thread, Lua script bench/spread.lua cycling through one "
                    "request path per tenant (client token in the query)",
                ],
                [
                    "software",
                    f"Python {env['python']}, Litestar {env['litestar']}, uvicorn "
                    f"{env['uvicorn']}, uvloop {env['uvloop']}, httptools {env['httptools']}, "
                    f"msgspec {env['msgspec']}",
                ],
            ],
        )
    )

    add("\n## Concurrency sweep (bare vs API, headline scenario)\n")
    add(
        _table(
            [
                "wrk -c",
                "bare req/s",
                "API req/s",
                "API/bare",
                "bare p50 ms",
                "bare p99 ms",
                "API p50 ms",
                "API p99 ms",
                "other load",
                "steal",
                "disturbed",
            ],
            [
                [
                    str(r["connections"]),
                    _n(r["bare_rps"]),
                    _n(r["api_rps"]),
                    _pct(r["ratio"]),
                    _ms(r["bare_p50_us"]),
                    _ms(r["bare_p99_us"]),
                    _ms(r["api_p50_us"]),
                    _ms(r["api_p99_us"]),
                    _n(r.get("other_cpu"), "{:.2f}"),
                    _n(r.get("steal_cpu"), "{:.2f}"),
                    _disturbed(r),
                ]
                for r in s["sweep"]
            ],
        )
    )

    add(
        f"\n## Scenarios (wrk -c{opts['connections']}, each against the bare handler "
        "measured next to it)\n"
    )
    add(
        _table(
            [
                "scenario",
                "req/s",
                "bare req/s",
                "/bare",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "200s",
                "client cmds/delivery",
                "script µs/call",
                "cmds inside script",
                "deliveries per Redis read",
                "Redis CPU µs/req",
                "API CPU",
                "API CPU µs/req",
                "other load",
                "steal",
                "disturbed",
            ],
            [
                [
                    f"{r['scenario']}: {_TITLES.get(r['scenario'], '')}",
                    _n(r["rps"]),
                    _n(r.get("bare_rps")),
                    _pct(r["ratio"]),
                    _ms(r["p50_us"]),
                    _ms(r["p99_us"]),
                    _ms(r["p99_9_us"]),
                    _pct(r["ok_fraction"]),
                    _commands(r),
                    _n(r["script_usec_per_call"], "{:.1f}"),
                    _n(r["internal_commands_per_script_call"], "{:.1f}"),
                    _n(r.get("script_calls_per_read"), "{:.2f}"),
                    _n(r["redis_cpu_us_per_request"], "{:.1f}"),
                    _pct(r["server_cpu_util"]),
                    _n(r.get("server_cpu_us_per_request"), "{:.1f}"),
                    _n(r.get("other_cpu"), "{:.2f}"),
                    _n(r.get("steal_cpu"), "{:.2f}"),
                    _disturbed(r),
                ]
                for r in s["scenarios"]
            ],
        )
    )
    add("\nThe first row is the headline: medians of its undisturbed pairs.\n")
    demo = next((r for r in s["scenarios"] if r["scenario"] == "demo-throttle"), None)
    if demo and demo["statuses"]:
        counts = ", ".join(f"{k}: {v:,}" for k, v in sorted(demo["statuses"].items()))
        add(
            f"\nDemo throttle statuses: {counts}. Each throttled request costs its one EVALSHA "
            "and delivers nothing, so its figures are per request.\n"
        )

    if hl:
        add("\n## Latency at half load\n")
        add(
            _table(
                ["", "achieved req/s", "mean wait ms", "p50 ms", "p99 ms", "p99.9 ms"],
                [
                    [
                        "API",
                        _n(hl["api_rps"]),
                        f"{hl['api_delay_mean_ms']:.2f}",
                        _ms(hl["api_p50_us"]),
                        _ms(hl["api_p99_us"]),
                        _ms(hl["api_p99_9_us"]),
                    ],
                    [
                        "bare",
                        _n(hl["bare_rps"]),
                        f"{hl['bare_delay_mean_ms']:.2f}",
                        _ms(hl["bare_p50_us"]),
                        _ms(hl["bare_p99_us"]),
                        _ms(hl["bare_p99_9_us"]),
                    ],
                ],
            )
        )
        add(
            "\nMethod: wrk has no fixed-rate mode (wrk2 is not packaged), so each of the "
            f"{hl['connections']} connections waits an exponentially distributed time before each "
            "request (spread.lua's `delay`), with the mean chosen so that connections × 1 / "
            "(wait + unloaded latency) ≈ half the API's measured max. Both targets get the same "
            "offered rate; wrk times a request from its write, so waits are not latency. "
            "A concurrency level with 50% throughput would not do: one connection already "
            "exceeds it.\n"
        )

    add("\n## Redis memory\n")
    seed = results.get("seed") or {}
    if seed:
        add(
            _table(
                ["", "bytes"],
                [
                    [
                        "per tenant, everything (tenant hash, 3 services, 9 keys, registries)",
                        _n(seed["bytes_per_tenant"]),
                    ],
                    [
                        "per tenant record alone (hash, seq, service set, registry)",
                        _n(seed["bytes_per_tenant_record"]),
                    ],
                    ["per service hash without keys", _n(seed["bytes_per_service"])],
                    [
                        "per stored provider key (its fields in the service hash)",
                        _n(seed["bytes_per_key"]),
                    ],
                ],
            )
        )
        add(
            f"\n`INFO memory` used_memory before seeding and after each phase "
            f"({seed['tenants']:,} tenants, {seed['keys']:,} keys, seeded in "
            f"{seed['seconds']:.1f} s), divided. Secrets are 56-character `sk-proj-` "
            "keys.\n"
        )
    sample = results.get("memory_sample") or {}
    if sample:
        add(
            "\n"
            + _table(
                [
                    "key (sampled after the load)",
                    "keys",
                    "MEMORY USAGE mean B",
                    "encoding",
                    "expires",
                ],
                [
                    [
                        k,
                        str(v["keys"]),
                        _n(v["mean_bytes"]),
                        v["encoding"],
                        "yes" if v["expires"] else "no",
                    ]
                    for k, v in sample.items()
                ],
            )
        )

    cap = s.get("capacity")
    if not reliable:
        add("\n## Capacity\n")
        add(
            "Not derived: an unreliable run's throughput says more about the other load than "
            "about the service (see the headline).\n"
        )
    if cap:
        add("\n## Capacity\n")
        add(
            f"Inputs: **{_n(cap['per_worker_rps'])} deliveries/s per API worker** (one uvicorn "
            f"worker on one dedicated core, headline scenario) and **"
            f"{cap['redis_cpu_us_per_delivery']:.1f} µs of Redis CPU per delivery** (`INFO cpu` "
            "used_cpu_user+sys delta over the window / deliveries: script, network handling, AOF "
            "write and fsync thread included).\n"
        )
        add(
            _table(
                ["deliveries/s", "API workers (cores)", "Redis shards"],
                [
                    [f"{r['target_rps']:,}", f"{r['api_workers']:,}", f"{r['redis_shards']:,}"]
                    for r in cap["rows"]
                ],
            )
        )
        add(
            f"\nAssumptions: an API worker is one process on one core, run at ≤ "
            f"{cap['worker_utilisation']:.0%} of its measured max; a Redis shard is one "
            f"Valkey main thread run at ≤ {cap['shard_utilisation']:.0%} of one core "
            f"(≈ {_n(cap['shard_rps'])} deliveries/s), no io-threads; deliveries spread evenly "
            "over tenants and tenants evenly over shards (one tenant's traffic is always on one "
            "shard: a single tenant cannot exceed one shard's rate); load balancer and network "
            "hops not included. Redis CPU per delivery was measured with one API worker's "
            "pipelined connection: with many workers each connection batches less, so a shard "
            "may need somewhat more CPU per delivery than measured here.\n"
        )

    prof = results.get("profile")
    if prof and prof.get("samples"):
        add("\n## Where the API worker's time goes (py-spy, headline load)\n")
        add(
            f"{prof['samples']:,} samples; self time = the innermost Python frame of a "
            "sample, C code it calls included; idle time in the event loop's poll is not "
            "sampled.\n\n"
        )
        add(
            _table(
                ["component (self time)", "%"],
                [[r["frame"], f"{r['percent']:.1f}"] for r in prof["components"]],
            )
        )
        add(
            "\n"
            + _table(
                ["top frames by self time", "%"],
                [[f"`{r['frame']}`", f"{r['percent']:.1f}"] for r in prof["self"]],
            )
        )
        add(
            "\n"
            + _table(
                ["top frames by inclusive time", "%"],
                [[f"`{r['frame']}`", f"{r['percent']:.1f}"] for r in prof["inclusive"]],
            )
        )

    add("\n## How the figures are obtained\n")
    add(
        "- Requests/s and latency percentiles come from wrk's `done` callback "
        "(`latency:percentile()`, µs) in bench/spread.lua; non-200 answers from wrk's status "
        "error count, or per status (a `response` callback) only in the demo scenario.\n"
        "- Ratios compare medians measured in the same run at the same wrk connection count "
        "and the same server flags; bare and API runs are interleaved.\n"
        "- Redis: `CONFIG RESETSTAT` before each API measurement, `INFO commandstats` after. "
        "commandstats (and total_commands_processed) also count the commands a script runs, "
        "so client commands = every command not called by any scripts/lua/*.lua (EVALSHA, "
        "EVAL, PING, ...), minus the bench's own INFO/CONFIG; the script-internal ones are the "
        "`cmds inside script` column. Per delivery = per script call / the fraction of requests "
        "answered 200 (every request is one script call; the server's count also includes the "
        "requests still in flight when wrk stops, which wrk does not count). Script time is "
        "cmdstat_evalsha usec / calls. `deliveries per Redis read` is script calls / `INFO "
        "stats` total_reads_processed: how many requests the API's write batching sends in "
        "one batch, as Valkey reads them. Redis CPU is the `INFO cpu` delta (the server "
        "process, every thread) over the window.\n"
        "- 'API CPU' is the worker's CPU time over the window (100% = its core saturated). "
        "'other load' is the host's process CPU (/proc/stat user + nice + system) not spent "
        "by wrk, the server under test or Valkey, in cores: other processes on a shared "
        "machine. 'steal' is /proc/stat's steal on the CPUs the bench runs on, in cores: time "
        "the hypervisor gave another VM while ours wanted to run.\n"
        "- Every API measurement is paired with the bare handler under the same load, measured "
        "right before or after it (the order alternates), and compared within its pair. A "
        "pair is disturbed when other load or steal exceeded its limit in either half, or "
        "when its bare handler ran further from the run's median bare rate than the baseline "
        "limit: the machine was faster or slower then, for a reason no counter shows (a VM's "
        "neighbours share caches and memory bandwidth). A disturbed pair is measured again "
        "(the quietest attempt is kept) and left out of the headline; when fewer than half of "
        "the headline pairs, or of all pairs, are undisturbed, the run is unreliable: no "
        "verdicts on timing goals, no capacity table (bench/disturbance.py).\n"
    )
    return "\n".join(x.rstrip("\n") + "\n" for x in out)
