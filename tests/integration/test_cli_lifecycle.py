"""The tenant and app lifecycles in the `rotator` CLI, run as a subprocess (issue #12 items 1
and 2): the API's rules and the API's JSON, a tenant by id or name, its own flags in errors."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from rotator.embedded import EmbeddedValkey
from rotator.store import keys, tenant_deletion
from rotator.store.connection import Durability
from tests.integration.cli_support import base_env, cut_short, rotator
from tests.integration.management import OPERATOR, SECRET, deliver
from tests.integration.test_tenant_deletion import count_keys, fill


def ok(*args: str, env: dict[str, str], stdin: str | None = None):
    done = rotator(*args, env=env, stdin=stdin)
    assert done.returncode == 0, (args, done.stderr)
    return done


def as_json(*args: str, env: dict[str, str]) -> dict | list:
    return json.loads(ok(*args, "--json", env=env).stdout)


def acme(env: dict[str, str]) -> dict:
    """A tenant with a service, a key and an app, made through the CLI."""
    tenant = as_json("tenant", "create", "acme", env=env)
    ok("service", "create", "acme", "openai", "--policy", "usage", env=env)
    ok("key", "add", "acme", "openai", "--label", "Primary", env=env, stdin=SECRET)
    tenant["app"] = as_json("app", "create", "acme", "web", env=env)
    return tenant


async def test_the_operators_views_print_the_apis_json(cli_env, client):
    tenant = acme(cli_env)
    for args, path in (
        (("tenant", "list"), "/v1/admin/tenants"),
        (("tenant", "info", "acme"), f"/v1/admin/tenants/{tenant['id']}"),
    ):
        shown = ok(*args, "--json", env=cli_env)
        api = await client.get(path, headers=OPERATOR)
        assert shown.stdout.strip() == api.text, args
    info = json.loads(shown.stdout)
    assert (info["services"], info["keys"], info["apps"]) == (1, 1, 1)
    table = ok("tenant", "list", env=cli_env).stdout.splitlines()
    assert table[0].split() == ["id", "name", "demo", "suspended", "created_at", "services",
                                "keys", "apps", "deliveries_today"]  # fmt: skip
    assert table[1].split()[1:4] == ["acme", "no", "no"]


async def test_rename_suspend_resume(cli_env, client):
    tenant = acme(cli_env)
    renamed = as_json("tenant", "rename", "acme", "Acme Ltd", env=cli_env)
    assert renamed["name"] == "Acme Ltd"
    bad = rotator("tenant", "rename", "Acme Ltd", " ", env=cli_env)
    assert bad.returncode == 1 and bad.stderr.startswith("rotator: NAME: "), bad.stderr

    assert as_json("tenant", "suspend", tenant["id"], env=cli_env)["suspended"] is True
    assert (await deliver(client, tenant["client_token"])).status_code == 403
    # its writes are refused, with the way out; its reads go on
    for args in (
        ("service", "create", tenant["id"], "other", "--policy", "usage"),
        ("app", "create", tenant["id"], "batch"),
        ("app", "suspend", tenant["id"], str(tenant["app"]["id"])),
        ("tenant", "update", tenant["id"], "--allow-any"),
        ("tenant", "client-token", tenant["id"]),
    ):
        refused = rotator(*args, env=cli_env)
        assert refused.returncode == 1, args
        assert refused.stderr.startswith(f"rotator: tenant suspended: {tenant['id']} reads")
        assert f"rotator tenant resume {tenant['id']}" in refused.stderr
    assert len(as_json("app", "list", tenant["id"], env=cli_env)) == 1
    assert as_json("tenant", "show", tenant["id"], env=cli_env)["suspended"] is True
    # the operator's commands still act on it
    fresh = as_json("tenant", "admin-token", tenant["id"], env=cli_env)["admin_token"]
    r = await client.get("/v1/tenant", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 200 and r.json()["suspended"] is True

    assert as_json("tenant", "resume", "Acme Ltd", env=cli_env)["suspended"] is False
    assert (await deliver(client, tenant["client_token"])).status_code == 200
    ok("app", "create", "Acme Ltd", "batch", env=cli_env)


async def test_delete_with_confirmation_and_progress(cli_env, redis, client):
    tenant = acme(cli_env)
    wrong = rotator("tenant", "delete", "acme", "--confirm", "acme2", env=cli_env)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("rotator: --confirm: must repeat"), wrong.stderr
    missing = rotator("tenant", "delete", "acme", env=cli_env)
    assert missing.returncode == 1 and "--confirm" in missing.stderr
    assert await redis.exists(keys.tenant(tenant["id"]))

    await fill(redis, tenant["id"], 3000)
    done = ok("tenant", "delete", "acme", "--confirm", "acme", "--json", env=cli_env)
    result = json.loads(done.stdout)
    assert result["id"] == tenant["id"] and result["state"] == "deleted"
    assert result["keys_removed"] >= 3000
    assert f"deleted tenant {tenant['id']}: {result['keys_removed']} keys removed" in done.stderr
    assert await count_keys(redis, tenant["id"]) == 0
    assert (await deliver(client, tenant["client_token"])).status_code == 403
    gone = rotator("tenant", "show", "acme", env=cli_env)
    assert gone.returncode == 1 and "no tenant with the id or name 'acme'" in gone.stderr


async def test_an_interrupted_deletion_is_finished_by_its_id(cli_env, redis):
    tenant = acme(cli_env)
    await fill(redis, tenant["id"], 5000)
    durability = Durability()
    began = await tenant_deletion.begin(redis, durability, tenant["id"], now_ms=1)
    await tenant_deletion.Deletion(redis, durability, tenant["id"], began).step()  # then dies
    by_name = rotator("tenant", "delete", "acme", "--confirm", "acme", env=cli_env)
    assert by_name.returncode == 1  # invisible by name already
    done = ok("tenant", "delete", tenant["id"], "--confirm", tenant["id"], env=cli_env)
    assert "state: deleted" in done.stdout
    assert await count_keys(redis, tenant["id"]) == 0
    assert await tenant_deletion.is_final(redis, tenant["id"])  # began long ago: re-checked


@pytest.mark.parametrize(
    ("cut_short_by", "code", "why"),
    [
        ("ctrl_c", 130, "interrupted"),
        ("timeout", 2, "store unavailable (TimeoutError); check ROTATOR_REDIS_URL"),
    ],
)
async def test_a_deletion_cut_short_says_what_it_left_and_how_to_finish_it(
    master_key_b64, tmp_path, cut_short_by, code, why
):
    """Ctrl-C, or a store that stops answering, mid-deletion: the tenant may be half gone
    (no name, no tokens, keys left). The message says so and names the command that finishes
    it; that command does."""
    server = EmbeddedValkey(tmp_path / "valkey")  # its own: the test pauses its writes
    server.start()
    r = aioredis.Redis.from_url(server.url)
    env = base_env(
        ROTATOR_REDIS_URL=server.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_REDIS_TIMEOUT_MS="60000",
    )
    try:
        tenant = acme(env)["id"]
        deleting = await cut_short(
            r, ["tenant", "delete", "acme", "--confirm", "acme"], env, cut_short_by
        )
        out, err = deleting.stdout, deleting.stderr
        assert deleting.returncode == code, err
        assert out == ""
        finish = f"rotator tenant delete {tenant} --confirm {tenant}"
        assert err == (
            f"rotator: {why}: the deletion of tenant {tenant} may be part done (its first step "
            "stops its tokens and removes its name, then its keys go in batches); run "
            f"`{finish}` to finish it, or a running worker does within a minute\n"
        )
        again = rotator(*finish.split()[1:], env=env)
        assert again.returncode == 0, again.stderr
        assert "state: deleted" in again.stdout
        assert await count_keys(r, tenant) == 0
    finally:
        await r.aclose()
        server.stop()


async def test_app_show_update_suspend_token(cli_env, client):
    tenant = acme(cli_env)
    app_id = str(tenant["app"]["id"])
    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}

    async def app_deliver(token: str):
        return await client.get("/v1/next", params={"service": "openai", "app_token": token})

    updated = as_json("app", "update", "acme", app_id, "--name", "batch", "--allow",
                      "10.0.0.0/8", "--max-daily", "7", env=cli_env)  # fmt: skip
    assert (updated["name"], updated["ip_allowlist"], updated["max_daily_requests"]) == (
        "batch", ["10.0.0.0/8"], 7,
    )  # fmt: skip
    shown = ok("app", "show", "acme", app_id, "--json", env=cli_env).stdout.strip()
    assert shown == (await client.get(f"/v1/apps/{app_id}", headers=auth)).text
    cleared = as_json("app", "update", "acme", app_id, "--allow-any", "--max-daily", "none",
                      env=cli_env)  # fmt: skip
    assert (cleared["ip_allowlist"], cleared["max_daily_requests"]) == ([], None)
    bad = rotator("app", "update", "acme", app_id, "--allow", "10.0.0.0/33", env=cli_env)
    assert bad.returncode == 1 and bad.stderr.startswith("rotator: --allow: "), bad.stderr
    bad = rotator("app", "update", "acme", app_id, "--name", "", env=cli_env)
    assert bad.returncode == 1 and bad.stderr.startswith("rotator: --name: "), bad.stderr

    assert (await app_deliver(tenant["app"]["app_token"])).status_code == 200
    assert as_json("app", "suspend", "acme", app_id, env=cli_env)["suspended"] is True
    assert (await app_deliver(tenant["app"]["app_token"])).status_code == 403
    assert as_json("app", "resume", "acme", app_id, env=cli_env)["suspended"] is False

    issued = ok("app", "token", "acme", app_id, "--json", env=cli_env)
    assert "shown once" in issued.stderr
    fresh = json.loads(issued.stdout)["app_token"]
    assert (await app_deliver(fresh)).status_code == 200
    assert (await app_deliver(tenant["app"]["app_token"])).status_code == 403

    unknown = rotator("app", "show", "acme", "999", env=cli_env)
    assert unknown.returncode == 1 and unknown.stderr == "rotator: app not found\n"
