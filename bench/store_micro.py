"""Micro-benchmark of what the store call costs the API worker: /v1/next with a real Valkey
against the same app with its store stubbed, many callers at once.

`python -m bench.store_micro [--tenants N] [--callers N] [--requests N] [--rounds N]`

The real app is called as an ASGI callable (no HTTP server) by `--callers` concurrent
tasks on one uvloop event loop, each sending its requests one after another over the
seeded tenants, so the delivery client batches its writes as under load. Three
variants alternate within each round:
- `real`: the store is the real one, against an embedded Valkey (AOF everysec);
- `stub, suspending`: the store answers a canned delivery after one trip through the
  event loop (the task suspended and woken, as a Redis reply wakes it);
- `stub`: the store answers at once.
The table gives this process's CPU per request, user and system apart (os.times): the
difference between `real` and `stub, suspending` is the store call's client side (packing,
the reply, its share of each write and read) without Valkey's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import redis as sync_redis
import uvloop

from bench import seeding
from bench.handler_micro import StubStore, _lifespan, _receive, scope_for
from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.domain.models import Delivery
from rotator.embedded import EmbeddedValkey
from rotator.settings import Settings


class SuspendingStub(StubStore):
    """The canned delivery after one event-loop iteration."""

    async def pick(self, *args: Any) -> Delivery:
        await asyncio.sleep(0)
        return self.delivery


async def _cpu_per_request(app: Any, queries: list[bytes], callers: int, requests: int):
    template = scope_for()
    statuses: set[int] = set()

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def caller(k: int) -> None:
        for i in range(requests):
            scope = dict(template)
            scope["query_string"] = queries[(k * 7919 + i) % len(queries)]
            await app(scope, _receive, send)

    before = os.times()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    after = os.times()
    if statuses != {200}:
        raise RuntimeError(f"unexpected statuses {statuses}")
    n = callers * requests
    return (after.user - before.user) * 1e6 / n, (after.system - before.system) * 1e6 / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tenants", type=int, default=2_000, help="tenants seeded (default 2000)")
    p.add_argument("--callers", type=int, default=32, help="concurrent callers (default 32)")
    p.add_argument("--requests", type=int, default=600, help="requests per caller per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    figures: dict[str, list[tuple[float, float]]] = {
        "real": [], "stub, suspending": [], "stub": []
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey", appendonly=True)
        valkey.start()
        try:
            with sync_redis.Redis.from_url(valkey.url) as r:
                population, _ = seeding.seed(r, ring, args.tenants, name="many")
            queries = [p.split("?", 1)[1].encode() for p in population.paths("usage")]
            settings = Settings(redis_url=valkey.url, master_key=ring, data_dir=Path(tmp))
            app = create_app(settings)

            async def run() -> None:
                inbox: Any = asyncio.Queue()
                outbox: Any = asyncio.Queue()
                scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
                task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
                await _lifespan(app, True, inbox, outbox)
                state = app.state.rotator
                stores = {
                    "real": state.delivery,
                    "stub, suspending": SuspendingStub(ring),
                    "stub": StubStore(ring),
                }
                try:
                    for _ in range(args.rounds):
                        for name, store in stores.items():
                            state.delivery = store
                            figures[name].append(
                                await _cpu_per_request(app, queries, args.callers, args.requests)
                            )
                finally:
                    state.delivery = stores["real"]
                    await _lifespan(app, False, inbox, outbox)
                    await task

            uvloop.run(run())
        finally:
            valkey.stop()
    print(
        f"CPU per request, µs, {args.callers} callers, {args.tenants:,} tenants "
        f"(best of {args.rounds} rounds by user + system; median user + system)"
    )
    for name, rows in figures.items():
        user, system = min(rows, key=sum)
        median = statistics.median(sum(row) for row in rows)
        print(f"  {name:<18} user {user:6.1f}  system {system:5.1f}   ({median:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
