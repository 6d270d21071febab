"""What the bench measures: run options (full and quick presets) and the scenarios.

Every API scenario runs at the same wrk connection count as the bare handler it is
compared with. The headline scenario (`usage`: usage policy, 3 keys, unmasked, many
tenants) is also swept over concurrencies for the plot and repeated for the ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    population: str
    """seeded tenants used: "many" (--tenants), "one" (a single tenant), "demo" (a demo tenant)"""
    service: str = "usage"
    masked: bool = False
    subscribed: bool = False
    """tenants subscribed to key.delivered: every delivery also XADDs an event"""
    count_status: bool = False
    """count responses per status in wrk (slower; for scenarios expecting non-200)"""
    expect_ok: bool = True


HEADLINE = Scenario("usage", "usage policy, 3 keys, unmasked", "many")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("usage-1tenant", "usage policy, 3 keys, unmasked, 1 tenant", "one"),
    Scenario("usage-masked", "usage policy, mask=1", "many", masked=True),
    Scenario("manual", "manual policy", "many", service="manual"),
    Scenario("time", "time policy", "many", service="time"),
    Scenario(
        "usage-events",
        "usage policy, key.delivered subscribed (XADD per delivery)",
        "many",
        subscribed=True,
    ),
    Scenario(
        "demo-throttle",
        "demo tenant over its per-IP rate (mostly 429)",
        "demo",
        count_status=True,
        expect_ok=False,
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


@dataclass(frozen=True)
class Options:
    quick: bool = False
    duration_s: int = 10
    warmup_s: int = 2
    sweep: tuple[int, ...] = (1, 4, 16, 32, 64, 128)
    connections: int = 32
    tenants: int = 10_000
    workers: int = 1
    repeats: int = 5
    """bare/API pairs at `connections` for the headline ratio (a sweep point counts as one)"""
    pin: bool = True
    noise_retries: int = 2
    """measure a pair again (keeping the quietest) while a half was disturbed"""
    max_other_cpu: float = 0.15
    """cores other processes may use during a measurement (bench/disturbance.py)"""
    max_steal_cpu: float = 0.05
    """cores the hypervisor may steal from the bench's CPUs during a measurement"""
    max_baseline_spread: float = 0.15
    """how much the bare handler's req/s may vary across the run (relative to its median)"""
    valkey_nice: int = 0
    """nice value of the Valkey process (negative: it preempts wrk on their shared core)"""
    wait_quiet_s: int = 0
    """before measuring, wait up to this long for other processes to go quiet"""
    halfload: bool = True
    profile: bool = True
    api_env: tuple[str, ...] = ()
    """NAME=VALUE settings of the API server only (an A/B: `--api-env ROTATOR_METRICS=0`)"""
    profile_s: int = 10
    scenarios: tuple[str, ...] = field(default=SCENARIO_NAMES)
    out_dir: Path = RESULTS_DIR
    install_wrk: bool = True
    server: str = "uvicorn"
    """what serves every app: "uvicorn" (production's) or "granian" (bench/servers.py)"""

    @classmethod
    def preset(cls, quick: bool) -> Options:
        if not quick:
            return cls()
        return cls(
            quick=True,
            duration_s=3,
            warmup_s=1,
            sweep=(1, 32, 128),
            repeats=1,
            profile=False,
            noise_retries=0,
        )

    def with_(self, **changes: object) -> Options:
        return replace(self, **changes)  # type: ignore[arg-type]

    def selected(self) -> list[Scenario]:
        return [s for s in SCENARIOS if s.name in self.scenarios]
