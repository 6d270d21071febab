"""The PNG: throughput and p50/p99 latency against wrk concurrency, bare handler vs API.

A point whose pair was disturbed (bench/disturbance.py) is circled in red and the legend
says so; an unreliable run says it in the title (report.py builds the title)."""

from __future__ import annotations

from pathlib import Path


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write(summary: dict, target: Path, title: str) -> bool:
    """Draw the sweep; False (nothing written) when matplotlib or the sweep is missing."""
    sweep = summary.get("sweep") or []
    if not sweep or not available():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = [row["connections"] for row in sweep]
    fig, (ax_rps, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.8))
    ax_rps.plot(conc, [r["bare_rps"] for r in sweep], "o-", label="bare Litestar handler")
    ax_rps.plot(conc, [r["api_rps"] for r in sweep], "o-", label="/v1/next (usage, 3 keys)")
    disturbed = [r for r in sweep if r.get("disturbed")]
    if disturbed:
        _circle(ax_rps, disturbed, ("bare_rps", "api_rps"), 1)
    ax_rps.set_xscale("log", base=2)
    ax_rps.set_xticks(conc, [str(c) for c in conc])
    ax_rps.set_xlabel("wrk connections")
    ax_rps.set_ylabel("requests/s")
    ax_rps.set_ylim(bottom=0)
    ax_rps.set_title("Throughput")
    ax_rps.grid(alpha=0.3)
    ax_rps.legend()

    for key, style, label in (
        ("bare_p50_us", "o--", "bare p50"),
        ("bare_p99_us", "o-", "bare p99"),
        ("api_p50_us", "s--", "/v1/next p50"),
        ("api_p99_us", "s-", "/v1/next p99"),
    ):
        ax_lat.plot(conc, [r[key] / 1000 for r in sweep], style, label=label)
    if disturbed:
        keys = ("bare_p50_us", "bare_p99_us", "api_p50_us", "api_p99_us")
        _circle(ax_lat, disturbed, keys, 1 / 1000)
    ax_lat.set_xscale("log", base=2)
    ax_lat.set_yscale("log")
    ax_lat.set_xticks(conc, [str(c) for c in conc])
    ax_lat.set_xlabel("wrk connections")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_title("Latency")
    ax_lat.grid(alpha=0.3, which="both")
    ax_lat.legend()

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return True


def _circle(ax: object, rows: list[dict], keys: tuple[str, ...], scale: float) -> None:
    """Red rings around the points of disturbed pairs, one legend entry for all."""
    xs = [r["connections"] for r in rows for _ in keys]
    ys = [r[k] * scale for r in rows for k in keys]
    ax.scatter(  # type: ignore[attr-defined]
        xs, ys, s=220, facecolors="none", edgecolors="red", linewidths=1.8, zorder=5,
        label="disturbed (other load, steal, or the bare rate off its median)",
    )  # fmt: skip
