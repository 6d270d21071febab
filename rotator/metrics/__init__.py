"""Prometheus metrics of the API and the worker (docs/operations.md#metrics-metrics lists them).

names.py       every metric, declared once (name, help, labels)
buckets.py     the hot path's in-process histograms: a bisect and an int per observation
fold.py        once a second each process moves its in-process counts into the metrics
exposition.py  what /metrics renders: all processes' files (multi-process mode), the
               in-process histograms reassembled; the multi-process directory's lifecycle

Why the fold: in multi-process mode every prometheus-client increment writes an mmap
file under a lock (≈ 1 µs a counter, ≈ 2 µs a histogram observation, timeit), which
is 3-7 % of a delivery's ≈ 56 µs of worker CPU. The delivery path already counts its
outcomes in plain ints for the summary log line (rotator/tally.py); the fold reads
those, so a delivery pays nothing extra for its counter; its two timings, taken inline by
the delivery route, cost about 0.5 µs (docs/benchmarks.md#metrics has the figures).
"""
