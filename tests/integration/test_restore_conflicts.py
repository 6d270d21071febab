"""A restore into a store that moved on since the backup: an imported token another tenant
holds now, a tenant whose deletion is not final yet. Both are refused whole, before
anything is written, with what to do instead."""

from __future__ import annotations

import json
import re

import pytest

from rotator.domain.clock import system_clock
from rotator.store import keys, tenant_deletion, token_index
from rotator.store.backup import load
from rotator.store.connection import Durability
from rotator.tuning import DELETION_RECHECK_AFTER_MS, IMPORTED_CACHE_TTL_MS
from tests.integration.backup_support import cli_env
from tests.integration.cli_support import rotator
from tests.integration.management import (
    OPERATOR,
    Tenant,
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)
from tests.integration.test_imported_tokens import (
    HOSTED,
    OTHER,
    app_deliver,
    holding,
    imported_tenant,
    indexed,
    sha,
)
from tests.integration.webhook_support import FAST
from workers.deletions import finish_tenant_deletions

pytestmark = pytest.mark.backends("single", "cluster")


async def ready(client, t, secret: str) -> None:
    await new_service(client, t)
    await new_key(client, t, secret=secret)


def backup(env, path) -> None:
    made = rotator("backup", str(path), env=env)
    assert made.returncode == 0, made.stderr


async def delivered(client, clock, token: str, app: bool = False) -> str:
    clock.advance(ms=IMPORTED_CACHE_TTL_MS)  # the API process asks the index again
    r = await (app_deliver(client, token) if app else deliver(client, token))
    assert r.status_code == 200, r.text
    return r.json()["key"]


async def given_up_after_backup(client, env, path) -> Tenant:
    """alpha, with HOSTED imported and a key, backed up to `path`; then it gives HOSTED up."""
    alpha = await imported_tenant(client, name="alpha")
    await ready(client, alpha, "sk-ALPHA-secret-0123456789")
    backup(env, path)
    assert (await client.post("/v1/tenant/client-token", headers=alpha.auth)).status_code == 200
    return alpha


async def test_a_client_token_imported_elsewhere_since_the_backup_is_not_taken_back(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    alpha = await given_up_after_backup(client, env, path)
    # bravo, not in the file, imports the token alpha gave up
    bravo = await imported_tenant(client, name="bravo")
    await ready(client, bravo, "sk-BRAVO-secret-0123456789")
    assert await delivered(client, clock, HOSTED) == "sk-BRAVO-secret-0123456789"

    refused = rotator("restore", "--replace", str(path), env=env)

    assert refused.returncode == 1
    assert (
        f"the imported token of tenant {alpha.id} is held by tenant {bravo.id} now"
        in refused.stderr
    )
    assert f"rotator tenant client-token {bravo.id}" in refused.stderr
    assert "nothing was restored" in refused.stderr and HOSTED not in refused.stderr
    assert await indexed(redis, sha(HOSTED)) == bravo.id
    assert await delivered(client, clock, HOSTED) == "sk-BRAVO-secret-0123456789"

    # bravo takes a new token: the restore gives alpha its own back
    assert (await client.post("/v1/tenant/client-token", headers=bravo.auth)).status_code == 200
    restored = rotator("restore", "--replace", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    assert await delivered(client, clock, HOSTED) == "sk-ALPHA-secret-0123456789"


async def test_the_advice_for_a_suspended_holder_works_as_given(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    await given_up_after_backup(client, env, path)
    bravo = await imported_tenant(client, name="bravo")
    r = await client.patch(f"/v1/admin/tenants/{bravo.id}", json={"suspended": True},
                           headers=OPERATOR)  # fmt: skip
    assert r.status_code == 200, r.text

    refused = rotator("restore", "--replace", str(path), env=env)

    assert refused.returncode == 1
    advice = re.search(r"a new token first \((.*)\); nothing was restored", refused.stderr)
    assert advice, refused.stderr
    commands = re.findall(r"`rotator ([^`]*)`", advice.group(1))
    assert commands == [f"tenant resume {bravo.id}", f"tenant client-token {bravo.id}",
                        f"tenant suspend {bravo.id}"]  # fmt: skip
    for command in commands:
        done = rotator(*command.split(), env=env)
        assert done.returncode == 0, (command, done.stderr)
    restored = rotator("restore", "--replace", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    assert await delivered(client, clock, HOSTED) == "sk-ALPHA-secret-0123456789"


async def test_a_token_two_tenants_of_the_file_hold_is_accepted_by_neither(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    """The state a restore before this check could leave (one token on two tenants) is
    backed up as it is; restored, the token opens neither tenant's keys."""
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    alpha = await imported_tenant(client, name="alpha")
    await ready(client, alpha, "sk-ALPHA-secret-0123456789")
    bravo = await imported_tenant(client, "bravo-client-token-0123456789", name="bravo")
    await redis.hset(keys.tenant(bravo.id), "client", sha(HOSTED))  # the old restore's damage
    backup(env, path)
    first, second = sorted((alpha.id, bravo.id))

    checked = rotator("restore", "--check", "--json", str(path), env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"note: tenant {first} and tenant {second} hold the same imported token" in (
        checked.stderr
    )
    assert json.loads(checked.stdout)["shared_tokens"] == [[first, second]]
    restored = rotator("restore", "--replace", "--json", str(path), env=env)

    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["shared_tokens"] == [[first, second]]
    assert await indexed(redis, sha(HOSTED)) is None
    clock.advance(ms=IMPORTED_CACHE_TTL_MS)
    assert (await deliver(client, HOSTED)).status_code == 403
    # neither accepts it, so importing it again gives it to one of them only
    assert await holding(redis, alpha.id, bravo.id) == []
    r = await client.post(
        "/v1/tenant/client-token", json={"client_token": HOSTED}, headers=bravo.auth
    )
    assert r.status_code == 200
    assert await holding(redis, alpha.id, bravo.id) == [bravo.id]
    # alpha's services hold the copy of its client field the delivery script reads
    revoked = await redis.hget(keys.tenant(alpha.id), "client")
    assert await redis.hget(keys.service(alpha.id, "openai"), "@client") == revoked
    # alpha's other tokens still work
    app = await new_app(client, alpha)
    assert (await app_deliver(client, app["app_token"])).status_code == 200


async def test_an_app_token_imported_elsewhere_since_the_backup_is_not_taken_back(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    alpha = await imported_tenant(client, name="alpha")
    await ready(client, alpha, "sk-ALPHA-secret-0123456789")
    app = await new_app(client, alpha, app_token=OTHER)
    backup(env, path)
    r = await client.delete(f"/v1/apps/{app['id']}", headers=alpha.auth)
    assert r.status_code == 204, r.text
    bravo = await imported_tenant(client, "bravo-client-token-0123456789", name="bravo")
    await ready(client, bravo, "sk-BRAVO-secret-0123456789")
    taker = await new_app(client, bravo, app_token=OTHER)

    refused = rotator("restore", "--replace", str(path), env=env)

    assert refused.returncode == 1
    assert f"is held by app {taker['id']} of tenant {bravo.id} now" in refused.stderr
    assert f"rotator app token {bravo.id} {taker['id']}" in refused.stderr
    assert await delivered(client, clock, OTHER, app=True) == "sk-BRAVO-secret-0123456789"


async def test_a_token_that_moved_between_tenants_of_the_file_goes_back(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    """Both owners are replaced by the file: the token goes back to the one that held it."""
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    alpha = await imported_tenant(client, name="alpha")
    await ready(client, alpha, "sk-ALPHA-secret-0123456789")
    bravo = await imported_tenant(client, "bravo-client-token-0123456789", name="bravo")
    await ready(client, bravo, "sk-BRAVO-secret-0123456789")
    backup(env, path)
    assert (await client.post("/v1/tenant/client-token", headers=alpha.auth)).status_code == 200
    r = await client.post(
        "/v1/tenant/client-token", json={"client_token": HOSTED}, headers=bravo.auth
    )
    assert r.status_code == 200, r.text
    assert await delivered(client, clock, HOSTED) == "sk-BRAVO-secret-0123456789"

    restored = rotator("restore", "--replace", str(path), env=env)

    assert restored.returncode == 0, restored.stderr
    assert await indexed(redis, sha(HOSTED)) == alpha.id
    assert await delivered(client, clock, HOSTED) == "sk-ALPHA-secret-0123456789"
    assert await delivered(client, clock, bravo.client_token) == "sk-BRAVO-secret-0123456789"


async def test_a_tenant_is_restored_only_once_its_deletion_is_final(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    t = await imported_tenant(client, name="victim")
    await ready(client, t, "sk-VICTIM-secret-0123456789")
    backup(env, path)
    r = await client.delete(f"/v1/admin/tenants/{t.id}", params={"confirm": t.id},
                            headers=OPERATOR)  # fmt: skip
    assert r.json()["state"] == "deleted"  # every key gone; the re-check is a minute away

    refused = rotator("restore", "--replace", str(path), env=env)

    assert refused.returncode == 1
    assert f"1 tenant(s) of the file are being deleted (tenant {t.id} since" in refused.stderr
    assert "nothing was restored" in refused.stderr.lower()
    assert not await redis.exists(keys.tenant(t.id))

    worker = {"settings": settings, "config": FAST, "data": redis, "clock": clock}
    clock.advance(ms=DELETION_RECHECK_AFTER_MS)
    await finish_tenant_deletions(worker)
    assert await tenant_deletion.is_final(redis, t.id)
    restored = rotator("restore", "--replace", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    # the worker's next runs leave it alone
    clock.advance(ms=DELETION_RECHECK_AFTER_MS)
    assert await finish_tenant_deletions(worker) == 0
    assert await delivered(client, clock, HOSTED) == "sk-VICTIM-secret-0123456789"


async def test_a_claim_refused_in_a_batch_writes_none_of_the_batch(client, redis):
    """token_index.take: one holder outside the tenants being replaced refuses the whole
    list, so a token moved to a live tenant of the file is not taken from it early."""
    dave = await imported_tenant(client, name="dave")
    charlie = await imported_tenant(client, "charlie-client-token-0123456789", name="charlie")
    moved = sha("charlie-client-token-0123456789")
    wanted = [(sha(HOSTED), "alpha"), (moved, "bravo")]

    taken = await token_index.take(
        redis, Durability(), wanted, replacing={"alpha", "bravo", charlie.id}
    )

    assert (taken.refused, taken.claims) == ({sha(HOSTED): dave.id}, [])
    assert await indexed(redis, moved) == charlie.id
    assert await indexed(redis, sha(HOSTED)) == dave.id
    with pytest.raises(ValueError):
        await token_index.take(redis, Durability(), [(moved, "alpha"), (moved, "bravo")])


async def test_a_token_imported_between_the_check_and_the_write_stops_the_restore(
    client, redis, clock, settings, master_key_b64, tmp_path, monkeypatch
):
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    alpha = await imported_tenant(client, name="alpha")
    await ready(client, alpha, "sk-ALPHA-secret-0123456789")
    backup(env, path)
    r = await client.patch("/v1/tenant", json={"name": "renamed"}, headers=alpha.auth)
    assert r.status_code == 200, r.text
    assert (await client.post("/v1/tenant/client-token", headers=alpha.auth)).status_code == 200
    bravo = await imported_tenant(client, name="bravo")
    await ready(client, bravo, "sk-BRAVO-secret-0123456789")
    ring = settings.keyring

    async def not_yet(redis, wanted, *, replacing=()):  # the import lands after the check
        return {}

    monkeypatch.setattr(token_index, "held_elsewhere", not_yet)
    with pytest.raises(load.RestoreRefused) as refused:
        await load.restore(redis, Durability(), ring, load.check_file(path, ring),
                           clock=system_clock, replace=True)  # fmt: skip

    assert f"is held by tenant {bravo.id} now" in refused.value.message
    assert f"the tenants of the file before {alpha.id} are restored" in refused.value.message
    assert await indexed(redis, sha(HOSTED)) == bravo.id
    assert await redis.hget(keys.tenant(alpha.id), "name") == b"renamed"  # not written
    assert await delivered(client, clock, HOSTED) == "sk-BRAVO-secret-0123456789"


async def test_a_token_moved_within_the_file_is_never_held_by_two_mid_restore(
    client, redis, settings, tmp_path, monkeypatch
):
    """R held the token at the backup, S (also in the file) imported it after: S is restored
    in a later batch than R, and between the two batches both would accept it."""
    from tests.integration.backup_support import make_backup
    from tests.integration.test_imported_tokens import holding

    alpha = await new_tenant(client, name="alpha")
    await ready(client, alpha, "sk-ALPHA-secret-0123456789")
    bravo = await new_tenant(client, name="bravo")
    await ready(client, bravo, "sk-BRAVO-secret-0123456789")
    probe = tmp_path / "probe.backup"
    await make_backup(redis, settings.keyring, probe)
    order = load.check_file(probe, settings.keyring).tenants
    r, s = sorted((alpha, bravo), key=lambda t: order.index(t.id))  # R's batch comes first
    reissue = "/v1/tenant/client-token"
    assert (await client.post(reissue, json={"client_token": HOSTED}, headers=r.auth)).is_success
    path = tmp_path / "kr.backup"
    await make_backup(redis, settings.keyring, path)
    assert (await client.post(reissue, json={}, headers=r.auth)).is_success
    assert (await client.post(reissue, json={"client_token": HOSTED}, headers=s.auth)).is_success
    monkeypatch.setattr(load, "RESTORE_BATCH_TENANTS", 1)
    both = []

    class Watching(Durability):
        async def execute(self, pipe):
            result = await super().execute(pipe)
            if len(await holding(redis, r.id, s.id)) == 2:
                both.append(True)
            return result

    said: list[str] = []
    await load.restore(redis, Watching(), settings.keyring, load.check_file(path, settings.keyring),
                       clock=system_clock, replace=True, say=said.append)  # fmt: skip

    assert both == []
    assert said == [
        f"note: tenant {s.id} held the imported token the file gives tenant {r.id}: it has a "
        "new token now, and its restore writes the one the file has"
    ]
    assert await holding(redis, r.id, s.id) == [r.id]  # as the file has it
    assert await indexed(redis, sha(HOSTED)) == r.id
