"""A/B: deliveries with imported client tokens against ours (issue #17: within 10%).

    python -m bench.imported_tokens [--tenants 1000] [--rounds 5] [--duration 5]

Two populations of the same size and shape (bench/seeding.py): one keeps our `krc_` tokens,
the other gets hosted-style tokens through the store function the API calls
(tenants.issue_client_token with a chosen value). One API process (as the bench's default),
wrk on /v1/next with the usage policy, unmasked; the two alternate for `rounds` pairs, the
order swapped each round, so drift and neighbours' noise fall on both. The imported side's
cache is warm after the first round trip per token and process (token_resolver.py: each
owner is looked up again every 5 s, about 1 request in 5,000 here). Prints the medians and
their ratio; the machine is shared, so read the spread too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import tempfile
from pathlib import Path

import redis
import redis.asyncio as aioredis

from bench import seeding, wrk
from bench.servers import Placement, Uvicorn, start_valkey
from rotator.crypto import KeyRing
from rotator.store import tenants
from rotator.store.connection import Durability


async def _import_tokens(url: str, tenant_ids: list[str]) -> list[str]:
    chosen = []
    client = aioredis.Redis.from_url(url)
    try:
        for tid in tenant_ids:
            token = "hosted" + secrets.token_urlsafe(24)  # opaque, as the guide's demo token
            await tenants.issue_client_token(client, Durability(), tid, token)
            chosen.append(token)
    finally:
        await client.aclose()
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000, help="per population")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    binary = wrk.ensure_wrk()
    placement = Placement.plan(pin=True, workers=1)
    with tempfile.TemporaryDirectory(prefix="bench-imported-") as tmp:
        work = Path(tmp)
        valkey = start_valkey(work / "valkey", placement.valkey)
        api = None
        try:
            r = redis.Redis.from_url(valkey.url)
            master_key = base64.b64encode(os.urandom(32)).decode()
            ring = KeyRing.parse(master_key)
            native, _ = seeding.seed(r, ring, args.tenants, name="native")
            imported, _ = seeding.seed(r, ring, args.tenants, name="imported")
            imported.tokens = asyncio.run(_import_tokens(valkey.url, imported.tenants))
            paths = {
                "native": wrk.write_paths(native.paths("usage"), work, "native"),
                "imported": wrk.write_paths(imported.paths("usage"), work, "imported"),
            }
            env = {
                "ROTATOR_REDIS_URL": valkey.url,
                "ROTATOR_MASTER_KEY": master_key,
                "ROTATOR_DATA_DIR": str(work / "api"),
                "ROTATOR_LOG_LEVEL": "WARNING",
            }
            api = Uvicorn(
                "rotator.api.app:create_app_from_env", env=env, workers=1,
                cpus=placement.api, log_path=work / "api.log",
            )  # fmt: skip
            url = api.start()
            rps: dict[str, list[float]] = {"native": [], "imported": []}
            for side in ("native", "imported"):  # warm-up: caches, script cache, hints
                wrk.run(url, paths[side], connections=args.connections, duration_s=2,
                        cpus=placement.load, wrk=binary)  # fmt: skip
            for n in range(args.rounds):
                order = ("native", "imported") if n % 2 == 0 else ("imported", "native")
                for side in order:
                    result = wrk.run(
                        url, paths[side], connections=args.connections,
                        duration_s=args.duration, cpus=placement.load, wrk=binary,
                    )  # fmt: skip
                    if result.errors.get("status", 0):
                        raise SystemExit(f"{side}: non-2xx answers: {result.errors}")
                    rps[side].append(result.requests / result.duration_s)
                    print(f"round {n + 1} {side:8}: {rps[side][-1]:8,.0f} req/s", flush=True)
            medians = {side: statistics.median(v) for side, v in rps.items()}
            for side, values in rps.items():
                print(f"{side:8}: median {medians[side]:,.0f} req/s "
                      f"(min {min(values):,.0f}, max {max(values):,.0f})")  # fmt: skip
            print(f"imported / native: {medians['imported'] / medians['native']:.3f}")
        finally:
            if api is not None:
                api.stop()
            valkey.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
