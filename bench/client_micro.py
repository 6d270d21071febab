"""Micro-benchmark of the hot path's Redis client: FastRedis.evalsha against redis-py's.

`python -m bench.client_micro [--duration S] [--rounds N] [--cluster]`

64 concurrent tasks on one uvloop event loop call a trivial Lua script against an
embedded Valkey as fast as they can; the table gives calls/s and the client's CPU
time per call (what an API worker pays; Valkey's own time is not in it). Valkey is
pinned to the first CPU and this process to the others when there are two or more.
A client that needs little CPU per call saturates Valkey's core instead of its own:
its calls/s is then Valkey's ceiling, and CPU per call is the figure to compare.
Variants alternate within each round, so a noisy machine affects them alike; the
best round of each is reported, with the median beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvloop
from redis.asyncio.cluster import RedisCluster

from rotator.embedded import EmbeddedValkey
from rotator.store.fastredis import FastRedis
from rotator.store.scripts import Script

SOURCE = b"return ARGV[1]"
SCRIPT = Script("micro", SOURCE, hashlib.sha1(SOURCE).hexdigest())
TIMEOUT_MS = 2000

Call = Callable[[int], Awaitable[Any]]


@dataclass
class Result:
    name: str
    calls_per_s: list[float] = field(default_factory=list)
    cpu_us_per_call: list[float] = field(default_factory=list)


async def drive(call: Call, *, tasks: int, duration_s: float) -> tuple[float, float]:
    """(calls/s, client CPU µs per call) of `tasks` concurrent loops for duration_s."""
    stop = False
    counts = [0] * tasks

    async def loop(index: int) -> None:
        while not stop:
            await call(index)
            counts[index] += 1

    runners = [asyncio.create_task(loop(i)) for i in range(tasks)]
    await asyncio.sleep(min(0.3, duration_s / 4))  # warm up: connections, script cache
    before, cpu_before, t0 = sum(counts), time.process_time(), time.perf_counter()
    await asyncio.sleep(duration_s)
    done, cpu, elapsed = (
        sum(counts) - before,
        time.process_time() - cpu_before,
        time.perf_counter() - t0,
    )
    stop = True
    await asyncio.gather(*runners)
    return done / elapsed, cpu / max(done, 1) * 1e6


async def floor_us(tasks: int, duration_s: float) -> float:
    """Client CPU per call of the driver itself: one future resolved per call, no I/O."""
    loop = asyncio.get_running_loop()

    async def null_call(_: int) -> None:
        fut = loop.create_future()
        loop.call_soon(fut.set_result, None)
        await fut

    return (await drive(null_call, tasks=tasks, duration_s=duration_s))[1]


async def variants(url: str, *, cluster: bool, tasks: int) -> dict[str, tuple[Call, Any]]:
    """name -> (one call, client to close). Keys differ per task so a cluster spreads them."""
    timeout_s = TIMEOUT_MS / 1000
    clients: dict[str, tuple[Call, Any]] = {}
    # redis-py as the rest of the code configures it (socket_timeout: a deadline per read),
    # and without it (what it costs when no deadline is wanted)
    for label, timeout in (("", timeout_s), (", no timeout", None)):
        plain: Any
        if cluster:
            plain = RedisCluster.from_url(url, socket_timeout=timeout)
            await plain.initialize()
        else:
            plain = aioredis.Redis.from_url(url, socket_timeout=timeout, max_connections=tasks)
        await plain.script_load(SOURCE)
        clients[f"redis-py{' cluster' if cluster else ''} evalsha{label}"] = (
            _plain_call(plain),
            plain,
        )
    fast = await FastRedis.connect(url, timeout_ms=TIMEOUT_MS, cluster=cluster)

    async def fast_call(i: int) -> Any:
        return await fast.evalsha(SCRIPT, (f"{{t:{i}}}:k",), ("x",))

    clients[f"FastRedis{' cluster' if cluster else ''} evalsha"] = (fast_call, fast)
    return clients


def _plain_call(plain: Any) -> Call:
    async def call(i: int) -> Any:
        return await plain.evalsha(SCRIPT.sha, 1, f"{{t:{i}}}:k", "x")

    return call


async def measure(
    url: str, *, cluster: bool, tasks: int, duration_s: float, rounds: int
) -> list[Result]:
    calls = await variants(url, cluster=cluster, tasks=tasks)
    results = {name: Result(name) for name in calls}
    try:
        for round_no in range(rounds):
            order = list(calls) if round_no % 2 == 0 else list(reversed(calls))
            for name in order:
                rate, cpu_us = await drive(calls[name][0], tasks=tasks, duration_s=duration_s)
                results[name].calls_per_s.append(rate)
                results[name].cpu_us_per_call.append(cpu_us)
                print(f"  round {round_no + 1}: {name:36} {rate:>10,.0f} calls/s", flush=True)
    finally:
        for _, client in calls.values():
            # redis-py clients close with aclose(), FastRedis with close()
            await (client.aclose() if hasattr(client, "aclose") else client.close())
    return list(results.values())


def table(results: list[Result]) -> str:
    baseline = max(results[0].calls_per_s)
    lines = [
        f"| {'client':36} | {'calls/s (best)':>14} | {'median':>10} | {'client CPU µs/call':>18} "
        f"| {'vs redis-py':>11} |",
        f"|{'-' * 38}|{'-' * 16}|{'-' * 12}|{'-' * 20}|{'-' * 13}|",
    ]
    for result in results:
        best = max(result.calls_per_s)
        median = statistics.median(result.calls_per_s)
        lines.append(
            f"| {result.name:36} | {best:>14,.0f} | {median:>10,.0f} "
            f"| {min(result.cpu_us_per_call):>18.1f} | {best / baseline:>10.2f}x |"
        )
    return "\n".join(lines)


def pin(pid: int, cpus: set[int]) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=64, help="concurrent callers")
    parser.add_argument("--cluster", action="store_true", help="also on a 3-node cluster")
    parser.add_argument("--no-pin", action="store_true", help="do not pin Valkey and client")
    args = parser.parse_args(argv)

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinning = not args.no_pin and len(cpus) >= 2
    with tempfile.TemporaryDirectory(prefix="client-micro-") as tmp:
        servers: list[EmbeddedValkey] = []
        try:
            single = EmbeddedValkey(Path(tmp) / "single", appendonly=False)
            single.start()
            servers.append(single)
            urls = [(single.url, False)]
            if args.cluster:
                from tests.cluster import ValkeyCluster  # the test suite's cluster builder

                cluster = ValkeyCluster(Path(tmp) / "cluster")
                cluster.start()
                servers.extend(cluster.nodes)
                urls.append((cluster.url, True))
            if pinning:
                for server in servers:
                    assert server.process is not None
                    pin(server.process.pid, {cpus[0]})
                pin(0, set(cpus[1:]))
            print(
                f"{args.tasks} concurrent tasks, uvloop, script {SOURCE.decode()!r}, "
                f"{args.rounds} x {args.duration:g} s per variant"
                + (f"; Valkey on CPU {cpus[0]}, client on {cpus[1:]}" if pinning else "")
            )
            all_results: list[Result] = []
            for url, is_cluster in urls:
                all_results += uvloop.run(
                    measure(
                        url,
                        cluster=is_cluster,
                        tasks=args.tasks,
                        duration_s=args.duration,
                        rounds=args.rounds,
                    )
                )
            floor = uvloop.run(floor_us(args.tasks, min(args.duration, 0.5)))
            per_target = len(all_results) // len(urls)
            for first in range(0, len(all_results), per_target):
                print()
                print(table(all_results[first : first + per_target]))
            print(f"\nthe driver's own event-loop floor (a future per call): {floor:.1f} µs/call")
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
