"""Master-key mistakes stop `serve`, `worker` and `run` at once, through the real CLI.

Before: a wrong key started happily and answered 500 to every delivery; `rotator run`
with a lost master.key generated a new one over data it could not open.
"""

from __future__ import annotations

import base64
import json
import os

import pytest

from rotator.crypto import KeyRing, fingerprint
from rotator.embedded import free_port
from rotator.store import keyring, keys
from tests.integration.cli_support import base_env, rotator
from tests.integration.test_cli import SECRET


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def fp(b64: str) -> str:
    return fingerprint(base64.b64decode(b64)).hex()


def seed_with_cli(env: dict[str, str]) -> str:
    """A tenant, a service and a sealed key, made by the CLI; returns the tenant id."""
    created = rotator("tenant", "create", "acme", "--json", env=env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)["id"]
    made = rotator("service", "create", tenant, "openai", "--policy", "manual", env=env)
    assert made.returncode == 0, made.stderr
    added = rotator("key", "add", tenant, "openai", "--label", "k", env=env, stdin=SECRET)
    assert added.returncode == 0, added.stderr
    return tenant


@pytest.mark.timeout(120)
async def test_a_wrong_key_stops_serve_worker_and_run(valkey, redis, tmp_path):
    right, wrong = b64key(), b64key()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url, ROTATOR_MASTER_KEY=right,
        ROTATOR_DATA_DIR=str(tmp_path), ROTATOR_PORT=str(free_port()),
    )  # fmt: skip
    seed_with_cli(env)
    assert await redis.hexists(keys.KEYRING, "canary")  # `key add` wrote it

    bad = {**env, "ROTATOR_MASTER_KEY": f"new:{wrong}"}
    for command in ("serve", "worker", "run"):
        r = rotator(command, env=bad)
        assert r.returncode == 2, (command, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("rotator: ROTATOR_MASTER_KEY: no configured key opens")
        assert fp(right) in r.stderr and fp(wrong) in r.stderr  # sealed with / configured
        assert right not in r.stderr and wrong not in r.stderr
    # the demo was not made: `run` stopped before touching the store
    assert not await redis.exists(keys.DEMO_TENANT)
    # the wrong key in the data dir's file: the refusal names the file, not the variable
    (tmp_path / "master.key").write_text(wrong)
    from_file = {k: v for k, v in env.items() if k != "ROTATOR_MASTER_KEY"}
    r = rotator("worker", env=from_file)
    assert r.returncode == 2, r.stderr
    assert f"(keys from {(tmp_path / 'master.key').resolve()})" in r.stderr


@pytest.mark.timeout(120)
async def test_an_upgraded_store_without_canary_is_checked_on_its_data(valkey, redis, tmp_path):
    right = b64key()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url, ROTATOR_MASTER_KEY=right,
        ROTATOR_DATA_DIR=str(tmp_path), ROTATOR_PORT=str(free_port()),
    )  # fmt: skip
    seed_with_cli(env)
    await redis.delete(keys.KEYRING)  # as a store written by an earlier version
    r = rotator("worker", env={**env, "ROTATOR_MASTER_KEY": b64key()})
    assert r.returncode == 2 and "ROTATOR_MASTER_KEY: no configured key opens" in r.stderr
    assert not await redis.exists(keys.KEYRING)
    added = rotator("key", "add", "0" * 16, "x", "--label", "k", env=env, stdin=SECRET)
    assert added.returncode == 1  # unknown tenant, but the key was checked first
    assert KeyRing.parse(right).open(await redis.hget(keys.KEYRING, "canary"), keyring.CANARY_AAD)


@pytest.mark.timeout(180)
def test_a_lost_master_key_file_is_refused_and_no_key_is_generated(tmp_path):
    data_dir = tmp_path / "var"
    env = base_env(ROTATOR_DATA_DIR=str(data_dir), ROTATOR_PORT=str(free_port()))
    seed_with_cli(env)  # embedded: `key add` generated var/master.key
    key_file = data_dir / "master.key"
    sealed_with = fp(key_file.read_text().strip())
    key_file.unlink()  # lost

    for command in ("run", "serve", "worker"):
        r = rotator(command, env=env)
        assert r.returncode == 2, (command, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("rotator: ROTATOR_MASTER_KEY: not set, and ")
        assert f"{key_file} is missing" in r.stderr and sealed_with in r.stderr
        assert "restore master.key from your backup" in r.stderr
        assert not key_file.exists(), command  # nothing generated


@pytest.mark.timeout(120)
async def test_rewrap_reseals_the_canary(valkey, redis, tmp_path):
    old, new = b64key(), b64key()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url, ROTATOR_MASTER_KEY=old, ROTATOR_DATA_DIR=str(tmp_path)
    )
    tenant = seed_with_cli(env)
    r = rotator("rewrap", "--json", env={**env, "ROTATOR_MASTER_KEY": f"next:{new},{old}"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rewrapped"] == 1
    assert f"key-ring canary: now sealed under key {fp(new)}" in r.stderr
    canary = await redis.hget(keys.KEYRING, "canary")
    assert KeyRing.parse(new).open(canary, keyring.CANARY_AAD) == keyring.CANARY_PLAINTEXT
    # the new key alone is enough now, and the old one alone is refused
    only_new = rotator("key", "add", tenant, "openai", "--label", "k2",
                       env={**env, "ROTATOR_MASTER_KEY": new}, stdin=SECRET + "2")  # fmt: skip
    assert only_new.returncode == 0, only_new.stderr
    only_old = rotator("key", "add", tenant, "openai", "--label", "k3", env=env,
                       stdin=SECRET + "3")  # fmt: skip
    assert only_old.returncode == 2 and fp(new) in only_old.stderr
