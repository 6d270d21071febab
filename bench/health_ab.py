"""Key health's price: next_key.lua with and without it (A/B, interleaved), and report.lua's own
throughput, measured inside the server.

    .venv/bin/python -m bench.health_ab [--rev main] [--tenants 2000] [--rounds 7]

Seeds `--tenants` tenants (bench/seeding.py) into a fresh Valkey. A is next_key.lua as it is at
git revision `--rev` (with that revision's prelude), B as it is here; both take this
checkout's KEYS/ARGV layout (key health added no argument). Rounds alternate A and B over the
same random deliveries, reading EVALSHA's usec_per_call and the server's main-thread CPU per
call (bench/script_ab.py's method). Then report.lua: the same tenants reporting 2xx (the
common case), then 429s (a cooldown written: the 'cool' field then exists, which B's
deliveries read on every call of that service), each as server µs per call and as reports a
second of one server core.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import subprocess
import tempfile
from pathlib import Path

import redis

from bench import seeding
from bench.script_ab import _new_call, _round, _spread
from rotator.crypto import KeyRing
from rotator.domain import tokens
from rotator.embedded import EmbeddedValkey
from rotator.store import keys
from rotator.store.scripts import delivery
from rotator.store.scripts import report as report_script

ROOT = Path(__file__).resolve().parent.parent
CALLS_PER_ROUND = 20_000


def _source_at(rev: str) -> bytes:
    def show(path: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True
        ).stdout

    return show("scripts/lua/lib/prelude.lua") + show("scripts/lua/next_key.lua")


def _report_call(tid: str, secret_hash: str, slug: str, key_id: str, status: int) -> tuple:
    sent: list[tuple[list, list]] = []

    class Recorder:
        async def evalsha(self, script: object, keys_: list, args: list) -> list:
            sent.append((list(keys_), list(args)))
            return [b"ok", b"active", b"", 0]

    asyncio.run(
        report_script.report(
            Recorder(), tid, "", slug, secret_hash, "", "", key_id=int(key_id), status=status,
            retry_after_s=30 if status == 429 else None, error="", usage_ttl_s="700000",
            events_maxlen="10000",
        )
    )  # fmt: skip
    return sent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main")
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedValkey(Path(data), appendonly=False)
        server.start()
        try:
            r = redis.Redis.from_url(server.url)
            ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
            population, _ = seeding.seed(r, ring, opts.tenants, name="health")
            a_sha = r.script_load(_source_at(opts.rev))
            b_sha = r.script_load(delivery.NEXT_KEY.source)
            report_sha = r.script_load(report_script.REPORT.source)
            rng = random.Random(1)
            picks = []
            for _ in range(CALLS_PER_ROUND):
                i = rng.randrange(len(population.tenants))
                parsed = tokens.parse(population.tokens[i])
                assert parsed is not None
                tid = population.tenants[i]
                ids = r.hget(keys.service(tid, "usage"), "ids").decode()
                picks.append((tid, parsed.secret_hash, ids))
            calls = [_new_call(t, h, "usage", ids) for t, h, ids in picks]
            _round(r, a_sha, calls[:2000])
            _round(r, b_sha, calls[:2000])
            a_us, b_us, a_cpu, b_cpu = [], [], [], []
            for n in range(opts.rounds):
                for us, cpu, sha in ((a_us, a_cpu, a_sha), (b_us, b_cpu, b_sha)):
                    script_us, cpu_us = _round(r, sha, calls)
                    us.append(script_us)
                    cpu.append(cpu_us)
                print(f"round {n + 1}: next_key A {a_us[-1]:.2f} B {b_us[-1]:.2f} µs; "
                      f"CPU A {a_cpu[-1]:.2f} B {b_cpu[-1]:.2f} µs")  # fmt: skip
            for what, a, b in (("script µs", a_us, b_us), ("CPU µs", a_cpu, b_cpu)):
                diffs = [y - x for x, y in zip(a, b, strict=True)]
                print(
                    f"next_key {what} per call: A ({opts.rev}) {_spread(a)}, B (here) "
                    f"{_spread(b)}; B - A per round {_spread(diffs, signed=True)}"
                )
            for status in (200, 429):
                reports = [
                    _report_call(t, h, "usage", ids.split(",")[0], status) for t, h, ids in picks
                ]
                us, cpu = zip(*(_round(r, report_sha, reports) for _ in range(opts.rounds)),
                              strict=True)  # fmt: skip
                print(
                    f"report.lua status {status}: script µs {_spread(list(us))}, CPU µs "
                    f"{_spread(list(cpu))}: {1e6 / statistics.median(cpu):,.0f} reports/s "
                    "per server core"
                )
            # deliveries of services one of whose keys is cooling (every usage service now)
            cool_us = [_round(r, b_sha, calls)[1] for _ in range(opts.rounds)]
            print(f"next_key B with a key cooling down: CPU µs {_spread(cool_us)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
