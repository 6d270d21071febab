"""`rotator backup` then `rotator restore` into an empty store: the same data, a working service.

Run as the operator would (the CLI as a subprocess), on a single node and on a cluster.
"""

from __future__ import annotations

import json
import stat

import pytest
import redis.asyncio as aioredis

from rotator.crypto import KeyRing
from rotator.domain.clock import system_clock
from rotator.store import keys
from rotator.store.backup import load
from rotator.store.cluster import Cluster
from rotator.store.connection import Durability
from tests.integration.backup_support import (
    assert_same,
    backed_up,
    cli_env,
    image,
    make_backup,
    populate,
    seed_tenants,
)
from tests.integration.cli_support import rotator
from tests.integration.management import deliver

pytestmark = pytest.mark.backends("single", "cluster")


async def test_restore_into_an_empty_store_gives_the_same_data_and_service(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    done = await populate(client, redis, clock)
    acme = done.tenants[0]
    env = cli_env(settings, master_key_b64)
    path = tmp_path / "kr.backup"

    made = rotator("backup", str(path), env=env)
    assert made.returncode == 0, made.stderr
    before = await image(redis)  # with the key-ring canary the backup's check wrote
    assert made.stdout.startswith("backed up 3 tenants (")
    assert f"to {path} in " in made.stdout
    assert settings.keyring.primary_fingerprint in made.stdout  # the key the secrets need
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    for secrets in done.secrets.values():
        assert not any(secret in text for secret in secrets)  # sealed, never in clear
    header = json.loads(text.splitlines()[0])
    # the first tenant of an empty store records its format (migrations.record_if_empty)
    assert (header["format"], header["version"], header["schema_version"]) == (
        "keyrotator-backup", 1, keys.SCHEMA_VERSION
    )  # fmt: skip
    assert header["tenants"] == 3
    assert master_key_b64 not in text

    await redis.flushall()
    restored = rotator("restore", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith("restored 3 tenants (")

    after = await image(redis)
    assert_same(backed_up(before), backed_up(after))
    assert not any(b":session" in k or b":gcra:" in k for k in after)  # left out on purpose
    assert await redis.smembers(keys.TIME_SERVICES) == {f"{acme.id}:anthropic".encode()}

    # the same tokens deliver, and the same master key opens what was sealed
    for slug, secrets in done.secrets.items():
        r = await deliver(client, acme.client_token, slug)
        assert r.status_code == 200, r.text
        assert r.json()["key"] in secrets
    r = await client.get("/v1/next", params={"service": "openai", "app_token": done.app_token})
    assert r.status_code == 200, r.text
    # usage counters came back: today's count goes on from where it was
    assert r.json()["meta"]["usage_today"] > 1
    assert (await deliver(client, done.tenants[1].client_token)).status_code == 200
    r = await client.get("/v1/services/openai/usage", params={"days": 3}, headers=acme.auth)
    assert [day["total"] > 0 for day in r.json()["days"]] == [True, True, True]


async def test_a_single_node_backup_restores_into_a_cluster(
    valkey, valkey_cluster, master_key_b64, tmp_path
):
    """The file knows keys, not servers: each tenant lands on its slot's primary."""
    ring = KeyRing.parse(master_key_b64)
    single = aioredis.Redis.from_url(valkey.url)
    await single.flushall()
    valkey_cluster.flush()
    cluster = Cluster.from_url(valkey_cluster.url)
    try:
        await seed_tenants(single, ring, 12, now_ms=system_clock())
        path = tmp_path / "single.backup"
        await make_backup(single, ring, path)
        before = backed_up(await image(single))

        await load.restore(cluster, Durability(), ring, load.check_file(path, ring),
                           clock=system_clock)  # fmt: skip

        assert_same(before, backed_up(await image(cluster)))
        owners = {valkey_cluster.owner(cluster.keyslot(keys.tenant(t.decode())))
                  for t in await cluster.smembers(keys.TENANTS)}  # fmt: skip
        assert len(owners) > 1  # spread over the primaries, not all on one
    finally:
        await single.aclose()
        await cluster.aclose()
