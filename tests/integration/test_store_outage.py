"""A store that fails after the token check: every management route answers 503, and the
CLI exits 2 with one line, because one exception handler maps the store's errors.

Deterministic by construction: the app's management client is replaced by one that
serves the guard's HGET of the admin token hash from the live store and sends every
other call to a store that is down (a port nothing listens on), so the failure always
falls between the guard and the handler. On the cluster backend the down store is a
cluster client, which reports "no node reachable" as RedisClusterException.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from rotator.api.app import create_app
from rotator.cli import main
from rotator.embedded import free_port
from rotator.store import tenants
from rotator.store.cluster import Cluster
from rotator.store.connection import is_unavailable
from tests.asgi import app_client
from tests.integration.management import (
    OPERATOR,
    OPERATOR_ROUTES,
    TENANT_ROUTES,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

pytestmark = pytest.mark.backends("single", "cluster")

# POST /v1/services/{slug}/rotate goes through the hot-path client (FastRedis), which
# raises StoreUnavailable itself; tests/integration/test_resilience.py covers that client


class DownAfterAuth:
    """A management client whose store goes down right after the tenant-admin guard."""

    def __init__(self, live: Any, down: Any) -> None:
        self.live = live
        self.down = down

    async def hmget(self, key: str, fields: list[str]) -> Any:
        # the guard's one read (rotator.store.tenants.admin_access)
        return await (self.live if fields[0] == "admin" else self.down).hmget(key, fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.down, name)


def down_store(backend: str) -> Any:
    port = free_port()  # nothing listens there: connections are refused at once
    if backend == "cluster":
        return Cluster.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.5)
    return aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)


async def test_store_failing_after_the_token_check_is_503_everywhere(
    backend, settings, redis, clock, caplog
):
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        t = await new_tenant(client)
        await new_service(client, t)
        ids = {
            "key": (await new_key(client, t))["id"],
            "app": (await new_app(client, t))["id"],
            "tenant": t.id,
        }
        state = app.state.rotator
        live = state.redis
        state.redis = DownAfterAuth(live, down_store(backend))
        try:
            with caplog.at_level(logging.WARNING):
                for method, path, body in [*TENANT_ROUTES, *OPERATOR_ROUTES]:
                    headers = OPERATOR if path.startswith("/v1/admin") else t.auth
                    r = await client.request(method, path.format(**ids), json=body, headers=headers)
                    assert (r.status_code, r.json()) == (503, {"error": "store unavailable"}), (
                        method,
                        path,
                        r.text,
                    )
                    assert r.headers["retry-after"] == "1"  # a client may send it again
        finally:
            await state.redis.down.aclose()
            state.redis = live
        # the token check really ran against the live store: a wrong token is still a 401
        r = await client.get("/v1/tenant", headers={"Authorization": "Bearer kta_x_y"})
        assert r.status_code == 401
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    # 27 failed requests, one outage: folded into one warning (none when an earlier test's
    # outage is still being folded: the API keeps one outage log per process)
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) <= 1, [r.getMessage() for r in unreachable]


def test_cli_store_failing_midway_exits_2_with_one_line(
    valkey, master_key_b64, tmp_path, monkeypatch, capsys
):
    async def refused(redis: Any, **_: Any) -> Any:  # named as the store function names it
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379")

    for name in [n for n in os.environ if n.startswith("ROTATOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROTATOR_REDIS_URL", valkey.url)  # reachable: the check at start passes
    monkeypatch.setenv("ROTATOR_MASTER_KEY", master_key_b64)
    monkeypatch.setenv("ROTATOR_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tenants, "list_tenants", refused)
    assert main(["tenant", "list"]) == 2
    err = capsys.readouterr().err
    assert err == "rotator: store unavailable (ConnectionError); check ROTATOR_REDIS_URL\n"


def test_which_errors_mean_unavailable():
    assert is_unavailable(RedisConnectionError("refused"))
    assert is_unavailable(OSError("unreachable"))
    try:
        raise RedisClusterException("Redis Cluster cannot be connected") from RedisConnectionError()
    except RedisClusterException as exc:
        assert is_unavailable(exc)
    # the same class also reports programming errors: those stay loud (500)
    assert not is_unavailable(RedisClusterException("Keys in request don't hash to the same slot"))
    assert not is_unavailable(ValueError("x"))
