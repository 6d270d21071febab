"""A store that is up but refuses to serve: it answers an error reply instead of the
command's result. Full (maxmemory reached, `OOM`), demoted to a read-only replica
(`READONLY`, a failover that moved the primary), busy with a script past
busy-reply-threshold (`BUSY`). Those replies mean what a refused connection means: the
store cannot serve now, and it serves again once the operator (or the script) is done.
So every route answers `503 store unavailable` with `Retry-After`, the log folds them
like an outage, and the CLI exits 2 with one line; never a 500 with a traceback per
request.

Each test runs its own Valkey: CONFIG SET maxmemory and REPLICAOF would disturb the
session's shared server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from rotator.api.app import create_app
from rotator.cli import main
from rotator.embedded import free_port
from rotator.store import services
from rotator.store.address import StoreAddress
from tests.asgi import app_client
from tests.integration.management import OPERATOR, Tenant, new_key, new_service, new_tenant

STORE_UNAVAILABLE = (503, {"error": "store unavailable"})
SPIN = (
    "local s = redis.call('TIME') local t0 = s[1] * 1e6 + s[2] "
    "while true do local n = redis.call('TIME') "
    "if n[1] * 1e6 + n[2] - t0 > 3e6 then return 1 end end"
)
"""A script that keeps the server busy for 3 s."""


@asynccontextmanager
async def running(settings, own_valkey, clock) -> AsyncIterator[tuple[Any, Tenant, Any]]:
    cfg = dataclasses.replace(settings, redis_url=own_valkey.url, redis_timeout_ms=2000)
    admin = aioredis.Redis.from_url(own_valkey.url)
    try:
        async with app_client(create_app(cfg, clock=clock)) as client:
            t = await new_tenant(client)
            await new_service(client, t)
            await new_key(client, t)
            yield client, t, admin
    finally:
        await admin.aclose()


async def answers(client: Any, t: Tenant) -> dict[str, tuple[int, Any, str | None]]:
    """A delivery, a report, a tenant admin's write and an operator's write."""
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "next": lambda: client.get(
            "/v1/next", params={"service": "openai", "token": t.client_token}
        ),
        "report": lambda: client.post(
            "/v1/report",
            json={"service": "openai", "key_id": 1, "status": 200},
            headers={"Authorization": f"Bearer {t.client_token}"},
        ),
        "write": lambda: client.post("/v1/apps", json={"name": "a"}, headers=t.auth),
        "operator write": lambda: client.post(
            "/v1/admin/tenants", json={"name": "other"}, headers=OPERATOR
        ),
    }
    out = {}
    for name, call in calls.items():
        r = await call()
        out[name] = (r.status_code, r.json(), r.headers.get("retry-after"))
    return out


def assert_all_unavailable(seen: dict[str, tuple[int, Any, str | None]]) -> None:
    for name, (status, body, retry_after) in seen.items():
        assert (status, body) == STORE_UNAVAILABLE, (name, status, body)
        assert retry_after == "1", name


def assert_no_tracebacks(caplog) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


REFUSING: dict[str, tuple[Callable[[Any], Awaitable[Any]], Callable[[Any], Awaitable[Any]]]] = {
    # (how the store is made to refuse, how it is made to serve again)
    # noeviction: every write refused with OOM
    "full": (
        lambda admin: admin.config_set("maxmemory", 1),
        lambda admin: admin.config_set("maxmemory", 0),
    ),
    # a replica of a primary that does not answer: READONLY to every write, its data kept
    "demoted to a replica": (
        lambda admin: admin.execute_command("REPLICAOF", "127.0.0.1", free_port()),
        lambda admin: admin.execute_command("REPLICAOF", "NO", "ONE"),
    ),
}


@pytest.mark.parametrize("state", REFUSING)
async def test_a_refusing_store_answers_503_not_500(settings, own_valkey, clock, caplog, state):
    refuse, serve = REFUSING[state]
    async with running(settings, own_valkey, clock) as (client, t, admin):
        await refuse(admin)
        try:
            with caplog.at_level(logging.WARNING):
                seen = await answers(client, t)
        finally:
            await serve(admin)
        assert_all_unavailable(seen)
        assert_no_tracebacks(caplog)
        # the store takes writes again: so does the API, without a restart
        r = await client.get("/v1/next", params={"service": "openai", "token": t.client_token})
        assert r.status_code == 200, r.text


async def test_a_store_busy_with_a_script_answers_503_not_500(settings, own_valkey, clock, caplog):
    async with running(settings, own_valkey, clock) as (client, t, admin):
        await admin.config_set("busy-reply-threshold", 100)  # BUSY after 0.1 s, not 5 s
        busy = aioredis.Redis.from_url(own_valkey.url, socket_timeout=30)
        script = asyncio.create_task(busy.eval(SPIN, 0))
        try:
            await asyncio.sleep(0.4)  # past the threshold: the own_valkey answers BUSY now
            with caplog.at_level(logging.WARNING):
                seen = await answers(client, t)
                health = await client.get("/healthz")
        finally:
            await script
            await busy.aclose()
        assert_all_unavailable(seen)
        assert (health.status_code, health.json()) == STORE_UNAVAILABLE
        assert_no_tracebacks(caplog)
        r = await client.get("/v1/next", params={"service": "openai", "token": t.client_token})
        assert r.status_code == 200, r.text


def cli_settings(monkeypatch, url: str, master_key_b64: str, data_dir) -> None:
    """The environment `rotator` (main, in this process) reads: this store, nothing else."""
    for name in [n for n in os.environ if n.startswith("ROTATOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROTATOR_REDIS_URL", url)
    monkeypatch.setenv("ROTATOR_MASTER_KEY", master_key_b64)
    monkeypatch.setenv("ROTATOR_DATA_DIR", str(data_dir))


async def test_cli_write_to_a_full_store_exits_2_with_one_line(
    own_valkey, master_key_b64, tmp_path, monkeypatch, capsys
):
    cli_settings(monkeypatch, own_valkey.url, master_key_b64, tmp_path)
    assert await asyncio.to_thread(main, ["tenant", "create", "acme"]) == 0
    capsys.readouterr()
    admin = aioredis.Redis.from_url(own_valkey.url)
    await admin.config_set("maxmemory", 1)
    try:
        code = await asyncio.to_thread(main, ["app", "create", "acme", "web"])
    finally:
        await admin.config_set("maxmemory", 0)
        await admin.aclose()
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("rotator: store unavailable (") and err.count("\n") == 1, err


@pytest.fixture
def demoted_midway(own_valkey, monkeypatch):
    """The store turns read-only (a failover) as an import adds its first keys: the service
    it created cannot be deleted again."""
    add_keys = services.add_keys

    async def demoting(*args: Any, **kwargs: Any) -> Any:
        with redis.Redis.from_url(own_valkey.url) as admin:
            admin.execute_command("REPLICAOF", "127.0.0.1", free_port())
        return await add_keys(*args, **kwargs)

    monkeypatch.setattr(services, "add_keys", demoting)
    yield
    with redis.Redis.from_url(own_valkey.url) as admin:
        admin.execute_command("REPLICAOF", "NO", "ONE")


IMPORT_LEFT = (
    "import failed midway and could not be undone (store unavailable); still there: "
    "service openai (created by the import) (delete them, then import again)"
)


async def test_an_import_cut_off_by_the_store_exits_2_in_one_line(
    own_valkey, master_key_b64, tmp_path, monkeypatch, capsys, caplog, demoted_midway
):
    cli_settings(monkeypatch, own_valkey.url, master_key_b64, tmp_path)
    assert await asyncio.to_thread(main, ["tenant", "create", "acme"]) == 0
    export = tmp_path / "export.csv"
    export.write_text(f"slug,policy,secret\nopenai,usage,sk-proj-{'a' * 40}\n")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        code = await asyncio.to_thread(main, ["import", "acme", str(export)])
    err = capsys.readouterr().err
    assert (code, err) == (2, f"rotator: {IMPORT_LEFT}\n")
    assert not [r for r in caplog.records if r.exc_info], "a traceback on stderr"
    assert [r.getMessage() for r in caplog.records] == [
        "import undo: could not delete service openai (READONLY)"
    ]


async def test_the_api_answers_an_import_cut_off_by_the_store_with_what_remains(
    settings, own_valkey, clock, caplog, demoted_midway
):
    async with running(settings, own_valkey, clock) as (client, t, _):
        with caplog.at_level(logging.WARNING):
            r = await client.post(
                "/v1/import",
                json={"rows": [{"slug": "mistral", "policy": "usage", "secret": "s" * 40}]},
                headers=t.auth,
            )
    # not 503 and its Retry-After: sent again, the import is refused until this is deleted
    assert (r.status_code, r.json()) == (500, {"error": IMPORT_LEFT.replace("openai", "mistral")})
    assert_no_tracebacks(caplog)


@pytest.mark.parametrize("state", ["down", "busy"])
async def test_worker_check_says_what_other_commands_say(
    own_valkey, master_key_b64, tmp_path, monkeypatch, capsys, state
):
    """The container health check on a store that is down or busy: exit 2, one line naming
    the setting, the line `rotator tenant list` prints."""
    url = own_valkey.url if state == "busy" else f"redis://127.0.0.1:{free_port()}"
    cli_settings(monkeypatch, url, master_key_b64, tmp_path)
    seen = []
    admin = aioredis.Redis.from_url(own_valkey.url)
    await admin.config_set("busy-reply-threshold", 100)
    spinner = aioredis.Redis.from_url(own_valkey.url, socket_timeout=30)
    script = asyncio.create_task(spinner.eval(SPIN, 0) if state == "busy" else asyncio.sleep(0))
    try:
        await asyncio.sleep(0.4)  # past the threshold: the own_valkey answers BUSY now
        for argv in (["worker", "--check"], ["tenant", "list"]):
            code = await asyncio.to_thread(main, argv)
            seen.append((code, capsys.readouterr().err))
    finally:
        await script
        await spinner.aclose()
        await admin.aclose()
    (code, line), (other_code, other_line) = seen
    assert code == other_code == 2 and line.count("\n") == 1, seen
    # the reason is redis-py's words: the sync client's differ from the async one's
    if state == "busy":
        assert line == other_line, seen
    named = f"rotator: ROTATOR_REDIS_URL: {StoreAddress.parse(url).display} does not answer"
    assert line.partition(" (")[0] == other_line.partition(" (")[0] == named


async def test_the_operator_reads_a_full_store(settings, own_valkey, clock):
    """Under maxmemory tenants still read; so must the operator, whose guard counts a
    sign-in attempt (a write of a few bytes, allowed past maxmemory)."""
    async with running(settings, own_valkey, clock) as (client, t, admin):
        await admin.config_set("maxmemory", 1)
        try:
            tenant_read = await client.get("/v1/services", headers=t.auth)
            operator_read = await client.get("/v1/admin/tenants", headers=OPERATOR)
        finally:
            await admin.config_set("maxmemory", 0)
    assert tenant_read.status_code == 200
    assert operator_read.status_code == 200, operator_read.text
