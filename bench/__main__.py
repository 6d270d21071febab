"""`python -m bench`: run the load and capacity suite and write bench/results/<date>.*

Starts its own Valkey (AOF everysec, temp dir) and two uvicorn servers (the API and
a bare Litestar handler, same flags and worker count), seeds tenants straight into
Redis, drives load with wrk and reports every API figure as a ratio to the bare
handler measured in the same run. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.scenarios import SCENARIO_NAMES, Options
from bench.servers import SERVERS


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIO_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIO_NAMES)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    full = Options.preset(quick=False)
    quick = Options.preset(quick=True)
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "keyrotator load and capacity bench. Measures GET /v1/next (policies, masking, "
            "1 vs many tenants, demo throttle, key.delivered events) against a bare Litestar "
            "handler in the same run, the Redis cost per delivery (commands, script time, CPU), "
            "Redis memory per tenant and key, latency at half load, and a capacity table. "
            "Needs wrk (installed with apt-get when run as root). Writes "
            "<out>/<date>.json, .md and .png."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"short run (<2 min): {quick.duration_s}s per measurement, sweep "
        f"{','.join(map(str, quick.sweep))}, one headline pair, no profile",
    )
    p.add_argument(
        "--duration",
        type=int,
        metavar="S",
        help=f"seconds per measurement (default {full.duration_s}, quick {quick.duration_s})",
    )
    p.add_argument(
        "--warmup",
        type=int,
        metavar="S",
        help=f"warm-up seconds before each measurement (default {full.warmup_s})",
    )
    p.add_argument(
        "--sweep",
        type=_ints,
        metavar="C,C,...",
        help=f"wrk connection counts of the sweep (default {','.join(map(str, full.sweep))})",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=full.connections,
        metavar="C",
        help="wrk connections of the headline and the scenarios",
    )
    p.add_argument("--tenants", type=int, default=full.tenants, help="tenants seeded")
    p.add_argument(
        "--workers",
        type=int,
        default=full.workers,
        help="uvicorn workers of both the API and the bare handler",
    )
    p.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help=f"bare/API pairs for the headline ratio (default {full.repeats})",
    )
    p.add_argument(
        "--scenarios",
        type=_names,
        metavar="A,B",
        help=f"subset of scenarios ({', '.join(SCENARIO_NAMES)}); the headline "
        "scenario and the bare handler always run",
    )
    p.add_argument(
        "--no-pin", action="store_true", help="do not pin wrk+Valkey and the API to separate CPUs"
    )
    p.add_argument(
        "--noise-retries",
        type=int,
        metavar="N",
        help="measure again up to N times while other processes on the machine used "
        f"more than --max-other-cpu cores (default {full.noise_retries}, quick "
        f"{quick.noise_retries})",
    )
    p.add_argument(
        "--max-other-cpu",
        type=float,
        default=full.max_other_cpu,
        metavar="CORES",
        help="other processes' CPU (cores, averaged) above which a measurement is "
        "taken as disturbed",
    )
    p.add_argument(
        "--max-steal-cpu",
        type=float,
        default=full.max_steal_cpu,
        metavar="CORES",
        help="CPU stolen by the hypervisor from the bench's CPUs (cores, averaged; "
        "/proc/stat steal) above which a measurement is taken as disturbed",
    )
    p.add_argument(
        "--max-baseline-spread",
        type=float,
        default=full.max_baseline_spread,
        metavar="FRACTION",
        help="the bare handler's req/s may vary by this much across the run "
        "((max - min) / median); more makes the run unreliable (no verdicts, "
        "no capacity table), and a pair further than this from the median is "
        "taken as disturbed",
    )
    p.add_argument(
        "--wait-quiet",
        type=int,
        default=0,
        metavar="S",
        help="before measuring, wait up to S seconds for other processes on the "
        "machine to go quiet (below --max-other-cpu)",
    )
    p.add_argument(
        "--valkey-nice",
        type=int,
        default=0,
        metavar="N",
        help="nice value for Valkey (root only for negative values)",
    )
    p.add_argument("--no-halfload", action="store_true", help="skip the half-load latency pair")
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample the API worker with py-spy under load (default: on, off in --quick)",
    )
    p.add_argument(
        "--api-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the API server only, for an A/B (e.g. ROTATOR_METRICS=0); repeatable",
    )
    p.add_argument(
        "--server",
        choices=SERVERS,
        default=full.server,
        help="what serves the API and the apps it is compared with (default uvicorn, as "
        "production; granian needs `pip install granian`)",
    )
    p.add_argument("--out", type=Path, default=full.out_dir, help="directory for results")
    p.add_argument(
        "--no-install", action="store_true", help="never apt-get install wrk, only explain how"
    )
    p.add_argument(
        "--report-from",
        type=Path,
        metavar="JSON",
        help="rebuild the .md and .png of an earlier results file, run nothing",
    )
    return p


def options(args: argparse.Namespace) -> Options:
    opts = Options.preset(args.quick)
    changes: dict[str, object] = {
        "connections": args.connections,
        "tenants": args.tenants,
        "workers": args.workers,
        "pin": not args.no_pin,
        "halfload": not args.no_halfload,
        "out_dir": args.out,
        "server": args.server,
        "install_wrk": not args.no_install,
        "max_other_cpu": args.max_other_cpu,
        "max_steal_cpu": args.max_steal_cpu,
        "max_baseline_spread": args.max_baseline_spread,
        "wait_quiet_s": args.wait_quiet,
        "valkey_nice": args.valkey_nice,
        "api_env": tuple(args.api_env),
    }
    for name, value in (
        ("duration_s", args.duration),
        ("warmup_s", args.warmup),
        ("sweep", args.sweep),
        ("repeats", args.repeats),
        ("scenarios", args.scenarios),
        ("profile", args.profile),
        ("noise_retries", args.noise_retries),
    ):
        if value is not None:
            changes[name] = value
    return opts.with_(**changes)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from bench import report
    from bench.analysis import summarise

    if args.report_from:
        results = json.loads(args.report_from.read_text())
        results["summary"] = summarise(results)
        paths = report.write(results, args.report_from.parent)
        print("\n".join(str(p) for p in paths.values()))
        return 0

    from bench.runner import Progress, run
    from bench.wrk import WrkMissing

    opts = options(args)
    if opts.tenants < 1 or opts.workers < 1 or opts.connections < 1:
        print("--tenants, --workers and --connections must be at least 1", file=sys.stderr)
        return 2
    log = Progress()
    try:
        results = run(opts, log)
    except WrkMissing as exc:
        print(str(exc), file=sys.stderr)
        return 3
    paths = report.write(results, opts.out_dir)
    log(report.headline_line(results["summary"]))
    for p in paths.values():
        log(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
