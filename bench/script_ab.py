"""next_key.lua alone, A/B: server µs per call of two versions of the script, interleaved.

    .venv/bin/python -m bench.script_ab [--rev main] [--tenants 10000] [--rounds 7]

Seeds `--tenants` tenants (bench/seeding.py: three services of three keys each) into a fresh
Valkey, then, in interleaved rounds, sends the same random deliveries through the script as it
is at git revision `--rev` (A: its prelude, libraries and text, which must take the same
KEYS/ARGV layout) and as it is in this checkout (B), both in this checkout's wrapper's layout,
reading INFO commandstats' usec_per_call of EVALSHA after each (CONFIG RESETSTAT before).
Prints each round and the medians with their spread: the machine is noisy, so only the
interleaved medians mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import statistics
import subprocess
import tempfile
from pathlib import Path

import redis

from bench import seeding
from rotator.crypto import KeyRing
from rotator.domain import tokens
from rotator.embedded import EmbeddedValkey
from rotator.store import keys
from rotator.store.scripts import _INCLUDE, delivery

ROOT = Path(__file__).resolve().parent.parent
CALLS_PER_ROUND = 20_000
PIPELINE = 500


def _show(rev: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:scripts/lua/{path}"],
        check=True,
        capture_output=True,
    ).stdout


def _old_source(rev: str) -> bytes:
    """next_key.lua as that revision's loader sends it (rotator/store/scripts/__init__.py):
    its prelude, the libraries it includes, its own text."""
    own = _show(rev, "next_key.lua")
    libs = [_show(rev, f"lib/{name.decode()}.lua") for name in _INCLUDE.findall(own)]
    shebang, own = own.split(b"\n", 1) if own.startswith(b"#!") else (b"", own)
    head = shebang + b"\n" if shebang else b""
    return b"".join([head, _show(rev, "lib/prelude.lua"), *libs, own])


def _new_call(tid: str, secret_hash: str, slug: str, ids: str) -> tuple[list, list]:
    """This checkout's layout, as its wrapper sends it (captured from a recording client)."""
    sent: list[tuple[list, list]] = []

    class Recorder:
        async def evalsha(self, script: object, keys_: list, args: list) -> list:
            sent.append((list(keys_), list(args)))
            return [b"token"]

    wrapper = delivery.NextKey(
        demo_interval_ms="1000", demo_burst="10", usage_ttl_s="700000", events_maxlen="10000",
        request_record_ttl_ms="60000",
    )  # fmt: skip
    hint = (ids, tuple(ids.split(",")))
    asyncio.run(wrapper(Recorder(), tid, "", slug, secret_hash, "", "", "", hint))
    return sent[0]


def _main_thread_cpu_s(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def _round(r: redis.Redis, sha: str, calls: list[tuple[list, list]]) -> tuple[float, float]:
    """(usec_per_call of EVALSHA, main-thread CPU µs per call). The CPU figure is what the
    server spent (parsing included), so time the process waited for a core does not count:
    on a shared machine it is the steadier of the two."""
    r.config_resetstat()
    cpu_s = _main_thread_cpu_s(r)
    for start in range(0, len(calls), PIPELINE):
        pipe = r.pipeline(transaction=False)
        for k, a in calls[start : start + PIPELINE]:
            pipe.evalsha(sha, len(k), *k, *a)
        for reply in pipe.execute(raise_on_error=True):
            assert reply[0] == b"ok", reply
    cpu_us = (_main_thread_cpu_s(r) - cpu_s) * 1e6 / len(calls)
    return float(r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]), cpu_us


def _spread(values: list[float], *, signed: bool = False) -> str:
    fmt = "+.2f" if signed else ".2f"
    return f"median {statistics.median(values):{fmt}} [{min(values):{fmt}}..{max(values):{fmt}}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--policy", default="usage", choices=seeding.POLICIES)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedValkey(Path(data), appendonly=False)
        server.start()
        try:
            r = redis.Redis.from_url(server.url)
            ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
            population, _ = seeding.seed(r, ring, opts.tenants, name="ab")
            old = _old_source(opts.rev)
            old_sha = r.script_load(old)
            new_sha = r.script_load(delivery.NEXT_KEY.source)
            assert new_sha == delivery.NEXT_KEY.sha
            assert old_sha == hashlib.sha1(old).hexdigest()
            rng = random.Random(1)
            picks = []
            for _ in range(CALLS_PER_ROUND):
                i = rng.randrange(len(population.tenants))
                parsed = tokens.parse(population.tokens[i])
                assert parsed is not None
                tid = population.tenants[i]
                ids = r.hget(keys.service(tid, opts.policy), "ids").decode()
                picks.append((tid, parsed.secret_hash, ids))
            b_calls = [_new_call(t, h, opts.policy, ids) for t, h, ids in picks]
            a_calls = b_calls  # the revision takes this checkout's KEYS/ARGV layout
            _round(r, old_sha, a_calls[:2000])  # warm both
            _round(r, new_sha, b_calls[:2000])
            a_us, b_us, a_cpu, b_cpu = [], [], [], []
            for n in range(opts.rounds):
                for us, cpu, sha, calls in (
                    (a_us, a_cpu, old_sha, a_calls),
                    (b_us, b_cpu, new_sha, b_calls),
                ):
                    script_us, cpu_us = _round(r, sha, calls)
                    us.append(script_us)
                    cpu.append(cpu_us)
                print(f"round {n + 1}: script A {a_us[-1]:.2f} B {b_us[-1]:.2f} µs; "
                      f"CPU A {a_cpu[-1]:.2f} B {b_cpu[-1]:.2f} µs")  # fmt: skip
            for what, a, b in (("script µs", a_us, b_us), ("CPU µs", a_cpu, b_cpu)):
                diffs = [y - x for x, y in zip(a, b, strict=True)]
                print(
                    f"{what} per call: A ({opts.rev}) {_spread(a)}, B (here) {_spread(b)}; "
                    f"B - A per round {_spread(diffs, signed=True)}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
