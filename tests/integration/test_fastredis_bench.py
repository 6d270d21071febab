"""Smoke run of bench/client_micro.py (tiny duration) so the micro-benchmark keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_client_micro_benchmark_runs_and_prints_its_table() -> None:
    # a subprocess: the benchmark runs its own uvloop event loop, as a real run does
    done = subprocess.run(
        [sys.executable, "-m", "bench.client_micro", "--duration", "0.1", "--rounds", "1",
         "--tasks", "8", "--no-pin"],
        cwd=REPO, capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "redis-py evalsha",
        "redis-py evalsha, no timeout",
        "FastRedis evalsha",
    ]
