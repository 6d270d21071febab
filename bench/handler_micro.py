"""Micro-benchmark of the API worker's CPU per /v1/next request, without a network or Redis.

`python -m bench.handler_micro [--requests N] [--rounds N]`

Each app is called as an ASGI callable, one request after another on one event loop,
with a fresh scope per request (as a server builds one): the raw ASGI callable, the
routing floor (bench/baselines.py), the bare `@get` handler (bench/bare_app.py) and
the real app's /v1/next with its store replaced by a stub that returns a canned
delivery (no Redis round trip: only this process's work). The table gives CPU µs per
request (process time, so other load on the machine inflates it far less than wall
time). Then the delivery's own steps, each timed alone (timeit). Variants alternate
within each round; the best round is reported, with the median beside it.

What it leaves out, by design: the HTTP server's parsing and writing (uvicorn or
granian: the same for every app) and the Redis client (bench/client_micro.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from bench import bare_app, baselines
from rotator.api.app import create_app
from rotator.api.delivery_request import DeliveryHeaders, query_values
from rotator.api.state import AppState
from rotator.crypto import KeyRing, aad_for_key
from rotator.domain import tokens
from rotator.domain.clientip import ClientIpResolver
from rotator.domain.iprange import ip_hex
from rotator.domain.masking import mask
from rotator.domain.models import Delivery
from rotator.request_ids import RequestIds
from rotator.settings import Settings

TENANT, SERVICE, KEY_ID = "0123456789abcdef", "usage", 7
SECRET = "sk-proj-" + "x" * 48
TOKEN = f"krc_{TENANT}_" + "s" * 43
QUERY = f"service={SERVICE}&token={TOKEN}".encode()


class StubStore:
    """DeliveryStore's pick, answering at once with the same delivery."""

    def __init__(self, ring: KeyRing) -> None:
        self.delivery = Delivery(
            tenant=TENANT, service=SERVICE, key_id=KEY_ID, label="Primary",
            ciphertext=ring.seal(SECRET.encode(), aad_for_key(TENANT, SERVICE, KEY_ID)),
            usage_today=42, policy="usage", max_daily_requests=None, demo=False,
        )  # fmt: skip

    async def pick(self, *args: Any) -> Delivery:
        return self.delivery


def scope_for(path: str = "/v1/next") -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": QUERY, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")], "state": {},
    }  # fmt: skip


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def api_app(ring: KeyRing, data_dir: Path) -> Any:
    settings = Settings(redis_url="redis://127.0.0.1:1", master_key=ring, data_dir=data_dir)
    app = create_app(settings)
    state: AppState = app.state.rotator
    state.delivery = StubStore(ring)  # type: ignore[assignment]
    return app


async def cpu_us_per_request(app: Any, requests: int) -> float:
    template = scope_for()
    statuses: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(200):  # warm: caches, the secret cache, lazily built handler state
        await app(dict(template), _receive, send)
    statuses.clear()
    started = time.process_time()
    for _ in range(requests):
        await app(dict(template), _receive, send)
    spent = time.process_time() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {set(statuses)}")
    return spent * 1e6 / requests


def steps(ring: KeyRing) -> list[tuple[str, Callable[[], object]]]:
    """The delivery's own steps in this process, each alone."""
    scope = scope_for()
    resolver = ClientIpResolver(())
    ids = RequestIds()
    blob = ring.seal(SECRET.encode(), aad_for_key(TENANT, SERVICE, KEY_ID))
    aad = aad_for_key(TENANT, SERVICE, KEY_ID)
    state = AppState(settings=None, keyring=ring)  # type: ignore[arg-type]
    cache = state.secrets
    cached = lambda: cache.body_prefix(TENANT, SERVICE, KEY_ID, blob, "", "usage", False)  # noqa: E731
    cached()
    return [
        ("query string (query_values)", lambda: query_values(QUERY)),
        ("headers (DeliveryHeaders)", lambda: DeliveryHeaders(scope)),  # type: ignore[arg-type]
        ("token (tokens.parse: SHA-256)", lambda: tokens.parse(TOKEN)),
        ("client address (resolve, ip_hex)", lambda: ip_hex(resolver.resolve("127.0.0.1", ""))),
        ("request id (RequestIds.choose)", lambda: ids.choose(None)),
        ("key, cached (SecretCache.body_prefix, hit)", cached),
        ("key, not cached (AES-GCM open + mask)", lambda: mask(ring.open(blob, aad).decode())),
    ]  # fmt: skip


async def _lifespan(app: Any, start: bool, inbox: Any, outbox: Any) -> None:
    await inbox.put({"type": "lifespan.startup" if start else "lifespan.shutdown"})
    reply = await outbox.get()
    if reply["type"].endswith("failed"):
        raise RuntimeError(reply.get("message", "lifespan failed"))


async def latencies_us(app: Any, queries: list[bytes], requests: int) -> list[float]:
    """Wall time of `requests` sequential requests (one connection's worth), sorted."""
    template = scope_for()
    statuses: set[int] = set()

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    out = []
    for i in range(requests + 200):
        scope = dict(template)
        scope["query_string"] = queries[i % len(queries)]
        started = time.perf_counter()
        await app(scope, _receive, send)
        if i >= 200:  # the first ones warm the caches
            out.append((time.perf_counter() - started) * 1e6)
    if statuses != {200}:
        raise RuntimeError(f"unexpected statuses {statuses}")
    return sorted(out)


def one_connection(requests: int, rounds: int) -> None:
    """`--latency`: the real app with a real Valkey (AOF everysec, 100 seeded tenants) against
    the routing floor, one request at a time, in this process: what a delivery adds to the
    floor's latency at one connection, without the HTTP server and the network."""
    import redis as sync_redis

    from bench import seeding
    from rotator.embedded import EmbeddedValkey

    ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey", appendonly=True)
        valkey.start()
        try:
            with sync_redis.Redis.from_url(valkey.url) as r:
                population, _ = seeding.seed(r, ring, 100, name="one")
            queries = [p.split("?", 1)[1].encode() for p in population.paths("usage")]
            settings = Settings(redis_url=valkey.url, master_key=ring, data_dir=Path(tmp))
            app = create_app(settings)
            figures: dict[str, list[tuple[float, float]]] = {"floor": [], "api": []}

            async def run() -> None:
                inbox: Any = asyncio.Queue()
                outbox: Any = asyncio.Queue()
                scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
                task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
                await _lifespan(app, True, inbox, outbox)
                floor = baselines.create_floor_app()
                try:
                    for _ in range(rounds):
                        for name, target in (("floor", floor), ("api", app)):
                            lat = await latencies_us(target, queries, requests)
                            figures[name].append((lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
                finally:
                    await _lifespan(app, False, inbox, outbox)
                    await task

            uvloop.run(run())
        finally:
            valkey.stop()
    print(f"One request at a time, in-process, wall µs (best round's p50 and p99 of {rounds})")
    for name, rows in figures.items():
        best = min(rows)
        print(f"  {name:<6} p50 {best[0]:7.1f}   p99 {best[1]:8.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000, help="requests per app per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--latency", action="store_true", help="one request at a time with a real Valkey instead"
    )
    args = p.parse_args(argv)
    if args.latency:
        one_connection(args.requests, args.rounds)
        return 0
    ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    with tempfile.TemporaryDirectory() as tmp:
        apps = {
            "raw ASGI callable": baselines.create_raw_app(),
            "routing floor (@asgi)": baselines.create_floor_app(),
            "bare @get handler": bare_app.create_app(),
            "/v1/next, store stubbed": api_app(ring, Path(tmp)),
        }
        figures: dict[str, list[float]] = {name: [] for name in apps}
        loop = uvloop.new_event_loop()
        try:
            for _ in range(args.rounds):
                for name, app in apps.items():
                    us = loop.run_until_complete(cpu_us_per_request(app, args.requests))
                    figures[name].append(us)
        finally:
            loop.close()
    print(f"CPU per request, µs (best of {args.rounds} rounds of {args.requests:,}; median)")
    for name, values in figures.items():
        print(f"  {name:<28} {min(values):7.1f}   ({statistics.median(values):.1f})")
    print("The delivery's steps alone, CPU µs (timeit, best of 5)")
    for name, fn in steps(ring):
        number = 20_000
        # process time: other load on the machine inflates wall time far more
        runs = timeit.repeat(fn, number=number, repeat=5, timer=time.process_time)
        best = min(runs) * 1e6 / number
        print(f"  {name:<40} {best:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
