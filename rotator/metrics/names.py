"""Every metric the API exports, declared once; docs/operations.md#metrics-metrics lists them (a
test checks the list against what /metrics exports). The worker's are in worker.py.

No label holds a tenant id, a token or a slug: their number is unbounded, and each label
value is a time series Prometheus keeps. Outcomes are the error table's messages and
routes are path templates, both bounded sets.

The three histograms are gathered in-process (buckets.py) and stored here as one raw
counter per bucket (`rotator_raw_*`, label `bucket`); exposition.py renders them as
true histograms, so a scrape shows `_bucket`/`_count`/`_sum` as usual.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

from rotator.metrics.buckets import LATENCY_BOUNDS_S

# a `_created` series per counter tells Prometheus nothing a reset does not, and doubles them
disable_created_metrics()

API = CollectorRegistry(auto_describe=True)
"""The API's metrics (single-process mode; in multi-process mode the files are read)."""

RAW_PREFIX = "rotator_raw_"

deliveries = Counter(
    "rotator_deliveries",
    "GET /v1/next answers by outcome: ok, or the error's message (the API's error table)",
    ["outcome"],
    registry=API,
)
reports = Counter(
    "rotator_reports",
    "POST /v1/report: reports by the provider status the client reported, by class (2xx, "
    "3xx, 4xx, 429 on its own, 5xx; `other` for anything else)",
    ["status_class"],
    registry=API,
)
store_errors = Counter(
    "rotator_store_errors",
    "requests answered 503 store unavailable (the store unreachable or too slow)",
    registry=API,
)
store_reconnects = Counter(
    "rotator_store_reconnects",
    "connects of the delivery path's store client after its first (each outage adds some)",
    registry=API,
)
management_requests = Counter(
    "rotator_management_requests",
    "requests other than deliveries (management API, console, health, docs) by route "
    "template, method and status",
    ["route", "method", "status"],
    registry=API,
)
tenant_deliveries = Counter(
    "rotator_tenant_deliveries",
    "with ROTATOR_METRICS_PER_TENANT=1 only: deliveries by tenant and outcome (`ok`: a key "
    "was picked; else the refusal's message), counted once the token was verified",
    ["tenant", "outcome"],
    registry=API,
)
api_processes = Gauge(
    "rotator_api_processes",
    "API processes currently running (ROTATOR_WORKERS)",
    registry=API,
    multiprocess_mode="livesum",
)

BATCH_BOUNDS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
"""Write batch sizes: the delivery client writes at most tuning.FLUSH_EVERY (8) at once."""

HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "rotator_delivery_duration_seconds": (
        "time to answer GET /v1/next, seconds",
        LATENCY_BOUNDS_S,
    ),
    "rotator_store_round_trip_seconds": (
        "a delivery's store call (one EVALSHA, with its packing and reply), seconds",
        LATENCY_BOUNDS_S,
    ),
    "rotator_store_write_batch_size": (
        "commands written to the store in one write (the delivery client gathers "
        "concurrent requests' commands)",
        BATCH_BOUNDS,
    ),
}
"""(help, bucket bounds) of the histograms exposition.py reassembles from raw counters."""

raw = {
    name: Counter(RAW_PREFIX + name.removeprefix("rotator_"), doc, ["bucket"], registry=API)
    for name, (doc, _) in HISTOGRAMS.items()
}
