"""Load and capacity suite for keyrotator (`make bench`, `python -m bench --help`).

Starts its own Valkey and API processes, seeds tenants straight into Redis, drives
load with wrk and reports throughput and latency as ratios to a bare Litestar
handler measured in the same run, plus the Redis cost and a capacity table.
"""
