"""After a full scenario, no provider key, token or webhook secret is in Redis in plaintext.

Every key name and every value is scanned, whatever its type (hash fields and
values, strings, sets, sorted sets, lists, stream entries).
"""

from __future__ import annotations

import base64
import os

from rotator.domain import tokens
from tests.conftest import OPERATOR_TOKEN
from tests.integration.management import (
    OPERATOR,
    Tenant,
    deliver,
    new_app,
    new_key,
    new_service,
)


async def dump(redis) -> list[bytes]:
    """Every key name and every stored byte string in the database."""
    out: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        out.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out.append(await redis.get(key))
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                out += [field, value]
        elif kind == "set":
            out += list(await redis.smembers(key))
        elif kind == "zset":
            out += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            out += await redis.lrange(key, 0, -1)
        elif kind == "stream":
            for _id, fields in await redis.xrange(key):
                for field, value in fields.items():
                    out += [field, value]
        else:
            raise AssertionError(f"unexpected type {kind} of {key!r}")
    return out


def needles(secret: str) -> list[bytes]:
    """The secret, and for a token its secret part alone (the prefix is public)."""
    found = [secret.encode()]
    parsed = tokens.parse(secret)
    if parsed is not None:
        # the secret part itself may contain '_': split off exactly the prefix's parts
        prefix_parts = 3 if parsed.kind == tokens.APP else 2
        secret_part = secret.split("_", prefix_parts)[prefix_parts]
        assert len(secret_part) >= 40 and tokens.hash_secret(secret_part) == parsed.secret_hash
        found.append(secret_part.encode())
    return found


async def test_no_secret_or_token_is_stored_in_plaintext(client, redis):
    secrets: list[str] = [OPERATOR_TOKEN]
    for name in ("acme", "demo"):
        r = await client.post(
            "/v1/admin/tenants", json={"name": name, "demo": name == "demo"}, headers=OPERATOR
        )
        body = r.json()
        secrets += [body["admin_token"], body["client_token"]]
        t = Tenant(body["id"], body["admin_token"], body["client_token"])
        auth = t.auth

        generated = await client.patch(
            "/v1/tenant",
            json={
                "webhook_url": "http://127.0.0.1:9/hook",
                "webhook_events": ["key.delivered", "service.limit_reached", "key.rotated"],
                "ip_allowlist": [],
            },
            headers=auth,
        )
        secrets.append(generated.json()["webhook_secret"])
        own = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        await client.patch("/v1/tenant", json={"webhook_secret": own}, headers=auth)
        secrets.append(own)

        await new_service(client, t, slug="openai", policy="usage", max_daily_requests=5)
        await new_service(client, t, slug="manual", policy="manual")
        for slug in ("openai", "manual"):
            for i in range(3):
                secret = f"sk-proj-{os.urandom(24).hex()}{i}"
                key = await new_key(client, t, slug=slug, secret=secret, label=f"k{i}")
                secrets.append(secret)
        await client.patch(
            f"/v1/services/manual/keys/{key['id']}", json={"active": False}, headers=auth
        )
        await client.post("/v1/services/manual/rotate", headers=auth)
        app = await new_app(client, t, name="web", max_daily_requests=2)
        secrets.append(app["app_token"])
        doomed = await new_app(client, t, name="gone")
        secrets.append(doomed["app_token"])
        await client.delete(f"/v1/apps/{doomed['id']}", headers=auth)

        fresh = (await client.post("/v1/tenant/client-token", headers=auth)).json()
        secrets.append(fresh["client_token"])
        for _ in range(7):  # deliveries, a limit reached, events recorded
            await deliver(client, fresh["client_token"])
            await deliver(client, fresh["client_token"], service="manual")
        for _ in range(3):
            await client.get(
                "/v1/next", params={"service": "openai", "app_token": app["app_token"]}
            )

    everything = await dump(redis)
    assert len(everything) > 50  # the scenario wrote a realistic amount
    assert any(b"key.delivered" in v for v in everything)  # events were recorded
    for secret in secrets:
        for needle in needles(secret):
            leaks = [v for v in everything if needle in v]
            assert not leaks, f"a secret ({secret[:6]}…) is stored in plaintext"
