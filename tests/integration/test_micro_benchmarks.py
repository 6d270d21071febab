"""Smoke runs of the micro-benchmarks (bench/client_micro.py, handler_micro.py,
store_micro.py), tiny sizes, so they keep working as the code they measure changes."""

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


def _run(*args: str) -> str:
    # a subprocess: each benchmark runs its own uvloop event loop, as a real run does
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_handler_micro_benchmark_answers_every_app_with_200s() -> None:
    out = _run("bench.handler_micro", "--requests", "300", "--rounds", "1")
    # it raises unless every request of every app was answered 200
    for app in ("raw ASGI callable", "routing floor", "bare @get handler", "/v1/next"):
        assert f"  {app}" in out
    assert "key, cached (SecretCache.body_prefix, hit)" in out


def test_store_micro_benchmark_runs_its_three_variants() -> None:
    out = _run(
        "bench.store_micro", "--tenants", "5", "--callers", "4", "--requests", "20",
        "--rounds", "1",
    )  # fmt: skip
    rows = [line.split(" user ")[0].strip() for line in out.splitlines() if line.startswith("  ")]
    assert rows == ["real", "stub, suspending", "stub"]
