"""What /metrics renders, and each API process's arrival and departure in the directory.

With ROTATOR_WORKERS > 1 (or any `rotator serve`), PROMETHEUS_MULTIPROC_DIR names a
directory where every process's metrics are mmap files (prometheus-client's
multi-process mode); a scrape, answered by any one process, reads all of them, so it
sees one consistent view. `rotator serve` sets it up (directory.py); without it (tests,
an app built in-process) the metrics are this process's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from rotator.metrics import names
from rotator.metrics.directory import ENV

CONTENT_TYPE = "text/plain; version=0.0.4"
"""Prometheus' text format (Litestar adds `; charset=utf-8`)."""


def multiprocess() -> bool:
    return bool(os.environ.get(ENV))


class _View:
    """A registry-like object for generate_latest: the raw metrics, histograms rebuilt."""

    def __init__(self, sources: Iterable[Metric]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        raws: dict[str, dict[str, float]] = {}
        for family in self._sources:
            if family.name.startswith(names.RAW_PREFIX):
                name = "rotator_" + family.name.removeprefix(names.RAW_PREFIX)
                values = raws.setdefault(name, {})
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        bucket = sample.labels["bucket"]
                        values[bucket] = values.get(bucket, 0.0) + sample.value
                continue
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
        for name, (doc, bounds) in names.HISTOGRAMS.items():
            yield _histogram(name, doc, bounds, raws.get(name, {}))


def _histogram(
    name: str, doc: str, bounds: tuple[float, ...], values: dict[str, float]
) -> HistogramMetricFamily:
    cumulative, buckets = 0.0, []
    for le in [repr(b) for b in bounds] + ["+Inf"]:
        cumulative += values.get(le, 0.0)
        buckets.append((le, cumulative))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=values.get("sum", 0.0))


def render() -> bytes:
    """The exposition text of every process's metrics (or this process's alone)."""
    source = MultiProcessCollector(None).collect() if multiprocess() else names.API.collect()
    return generate_latest(_View(source))  # type: ignore[arg-type]


def process_started() -> None:
    """In each API process: live gauges of processes that died without stopping (a crash,
    a kill) are dropped, so `rotator_api_processes` counts the living. prometheus-client
    names a live gauge's file `gauge_live<mode>_<pid>.db` (its multiprocess docs)."""
    if not multiprocess():
        return
    directory = Path(os.environ[ENV])
    for file in directory.glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), str(directory))


def process_stopped() -> None:
    if multiprocess():
        mark_process_dead(os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
