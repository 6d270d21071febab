"""What a restore does to a store: --replace, an interrupted restore run again, the event
stream's undelivered entries, counters that expired since the backup."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rotator.domain.clock import DAY_MS, system_clock
from rotator.store import claims, keys, services, sessions, tenants
from rotator.store.backup import load
from rotator.store.connection import Durability
from rotator.store.events import EventStreams
from tests.integration.backup_support import (
    assert_same,
    backed_up,
    cli_env,
    image,
    make_backup,
    seed_tenants,
)
from tests.integration.test_cli import rotator

pytestmark = pytest.mark.backends("single", "cluster")


async def restore(redis, ring, path, **options):
    return await load.restore(
        redis, Durability(), ring, load.check_file(path, ring), clock=system_clock, **options
    )


async def test_replace_puts_the_file_tenants_back_whole_and_keeps_the_others(
    redis, settings, tmp_path
):
    ring, d = settings.keyring, Durability()
    first, second = await seed_tenants(redis, ring, 2, now_ms=system_clock())
    path = tmp_path / "kr.backup"
    await make_backup(redis, ring, path)
    before = backed_up(await image(redis))

    # afterwards: a new time service, a console session, the webhook removed, a key gone,
    # and a tenant the file does not know
    await services.create_service(redis, d, first, slug="later", policy="time",
                                  key_ttl_minutes=5, now_ms=system_clock())  # fmt: skip
    await sessions.open_tenant_session(
        redis, first, admin_hash=await tenants.admin_token_hash(redis, first),
        now_ms=system_clock(), idle_ms=60_000, max_ms=60_000,
    )  # fmt: skip
    await tenants.update_tenant(redis, d, ring, first, webhook_url=None)
    await services.remove_key(
        redis, d, second, "openai", 1, now_ms=system_clock(), events_maxlen=1000
    )
    (newer,) = await seed_tenants(redis, ring, 1, now_ms=system_clock())
    newer_keys = {k: v for k, v in (await image(redis)).items() if newer.encode() in k}

    report = await restore(redis, ring, path, replace=True)

    assert (report.tenants, report.replaced, report.kept, report.resumed) == (2, 2, 1, False)
    after = await image(redis)

    registries = {k.encode() for k in (keys.TENANTS, keys.TIME_SERVICES, keys.WEBHOOK_TENANTS)}
    # the key ring counts the writes sealed since (store/keyring.py): the store's own, kept
    ring_key = keys.KEYRING.encode()

    def without_newer(found: dict) -> dict:
        return {k: v for k, v in found.items()
                if newer.encode() not in k and k not in registries and k != ring_key}  # fmt: skip

    assert_same(without_newer(before), without_newer(backed_up(after)))
    assert before[ring_key][1].keys() == after[ring_key][1].keys()  # the same keys listed
    assert not any(b":session" in k for k in after)  # replaced whole: its sessions ended
    assert {k: v for k, v in after.items() if newer.encode() in k} == newer_keys
    assert await redis.smembers(keys.TENANTS) == {t.encode() for t in (first, second, newer)}
    assert await redis.smembers(keys.WEBHOOK_TENANTS) == {first.encode(), newer.encode()}
    assert await redis.smembers(keys.TIME_SERVICES) == {
        keys.time_service_member(t, "clock").encode() for t in (first, second, newer)
    }  # and no longer first's "later"


async def test_an_interrupted_restore_is_finished_by_running_it_again(
    redis, settings, tmp_path, monkeypatch
):
    ring = settings.keyring
    await seed_tenants(redis, ring, 3, now_ms=system_clock())
    path = tmp_path / "kr.backup"
    await make_backup(redis, ring, path)
    before = backed_up(await image(redis))
    await redis.flushall()

    class Crash(Exception):
        pass

    def crash_after_the_first_tenant(done: int, total: int) -> None:
        raise Crash

    monkeypatch.setattr(load, "RESTORE_BATCH_TENANTS", 1)
    with pytest.raises(Crash):
        await restore(redis, ring, path, progress=crash_after_the_first_tenant)
    assert len(await redis.smembers(keys.TENANTS)) == 1  # one whole tenant, no more

    report = await restore(redis, ring, path)  # the same command again

    assert (report.tenants, report.resumed) == (3, True)
    assert_same(before, backed_up(await image(redis)))
    with pytest.raises(load.RestoreRefused, match="pass --replace"):
        await restore(redis, ring, path)  # finished: no longer a resumable restore


async def test_undelivered_events_are_delivered_again_with_their_ids(redis, settings, tmp_path):
    """Only the events not surely delivered are backed up; the pending ones are delivered
    again after a restore (at-least-once, same ids: receivers deduplicate)."""
    ring = settings.keyring
    (tenant,) = await seed_tenants(redis, ring, 1, now_ms=system_clock())
    stream = keys.events(tenant)
    recorded = [
        (await redis.xadd(stream, {"type": "key.rotated", "data": f'{{"n":{n}}}'})).decode()
        for n in range(5)
    ]
    pump = EventStreams(redis)
    await pump.ensure_group(tenant)
    read = await pump.read_new(tenant, "pump-1", 5)
    await pump.ack(tenant, [entry_id for entry_id, _ in read[:2]])  # 3 still pending
    await redis.xdel(stream, recorded[-1])  # taken back (delivery_refund.lua does this)
    path = tmp_path / "kr.backup"
    await make_backup(redis, ring, path)
    await redis.flushall()

    await restore(redis, ring, path)

    assert await redis.xlen(stream) == 2  # what was acknowledged is done: not in the backup
    again = await EventStreams(redis).read_new(tenant, "pump-2", 10)
    assert [entry_id for entry_id, _ in again] == recorded[2:4]  # acked ones are not resent
    later = (await redis.xadd(stream, {"type": "key.rotated", "data": "{}"})).decode()
    assert later > recorded[-1]  # an id handed out before the backup is never reused


async def test_counters_that_expired_since_the_backup_are_not_written(
    redis, settings, tmp_path, client
):
    ring = settings.keyring
    (tenant,) = await seed_tenants(redis, ring, 1, now_ms=system_clock())
    day = system_clock() // DAY_MS
    await redis.hset(keys.usage(tenant, day), "s:openai", 3)
    await redis.pexpire(keys.usage(tenant, day), 60 * DAY_MS)
    path = tmp_path / "kr.backup"
    await make_backup(redis, ring, path)
    await redis.flushall()

    report = await load.restore(
        redis, Durability(), ring, load.check_file(path, ring),
        clock=lambda: system_clock() + 61 * DAY_MS,
    )  # fmt: skip

    assert report.expired == 1
    assert await redis.exists(keys.usage(tenant, day)) == 0
    assert await redis.exists(keys.tenant(tenant)) == 1


async def test_a_tenant_deleted_while_the_restore_runs_stays_deleted(
    redis, settings, master_key_b64, tmp_path
):
    ring = settings.keyring
    kept, deleted = await seed_tenants(redis, ring, 2, now_ms=system_clock())
    path = tmp_path / "kr.backup"
    await make_backup(redis, ring, path)
    env = cli_env(settings, master_key_b64)

    def delete_once(done: int, total: int) -> None:
        # an operator deletes a tenant of the file while the restore writes (the CLI's own
        # process and connection; this callback holds the restore meanwhile)
        if done == total:
            gone = rotator("tenant", "delete", deleted, "--confirm", deleted, env=env)
            assert gone.returncode == 0, gone.stderr

    with pytest.raises(load.RestoreRefused) as refused:
        await restore(redis, ring, path, replace=True, progress=delete_once)

    assert str(refused.value).startswith(
        f"1 tenant(s) of the file were deleted while it was restored (tenant {deleted} at "
    )
    assert "run the same restore again once the deletion is final" in str(refused.value)
    listed = rotator("tenant", "list", "--json", env=env)
    assert [t["id"] for t in json.loads(listed.stdout)] == [kept]  # the deletion stands
    assert b"finished_ms" not in await redis.hgetall(keys.RESTORE)  # run again: it resumes


async def test_a_second_restore_while_one_runs_is_refused_naming_it(
    redis, settings, master_key_b64, tmp_path
):
    ring = settings.keyring
    await seed_tenants(redis, ring, 1, now_ms=system_clock())
    path = tmp_path / "kr.backup"
    await make_backup(redis, ring, path)
    env = cli_env(settings, master_key_b64)
    # what a running restore holds: a live process of this machine (this one)
    async with claims.claimed(
        redis, keys.RESTORE_CLAIM, what="restore", about="/backups/other.krb", now_ms=system_clock()
    ):
        second = rotator("restore", "--replace", str(path), env=env)
    assert second.returncode == 2, second.stderr  # worth a retry once the first is done
    assert second.stderr.startswith(
        "rotator: another restore is running: /backups/other.krb, since "
    ), second.stderr
    assert f"pid {os.getpid()} on " in second.stderr
    assert "wait for it to finish (if it died, its claim lapses within 60 s)" in second.stderr
    # the first one done, the claim is free
    done = rotator("restore", "--replace", str(path), env=env)
    assert done.returncode == 0, done.stderr
    assert await redis.get(keys.RESTORE_CLAIM) is None


KILLED_AFTER_ITS_FIRST_TENANT = """
import os, signal, sys
from rotator.cli import backup, main
from rotator.store.backup import load

def kill_9(progress, done, total):
    os.kill(os.getpid(), signal.SIGKILL)

load.RESTORE_BATCH_TENANTS = 1
backup._Progress.__call__ = kill_9
sys.exit(main(sys.argv[1:]))
"""


async def killed_midway(redis, path: Path, env: dict[str, str]) -> bytes:
    """`rotator restore FILE` killed outright (kill -9) once its first tenant is written: the
    claim it leaves, held by a process that is gone."""
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_ITS_FIRST_TENANT, "restore", str(path)],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(await redis.smembers(keys.TENANTS)) == 1
    left = await redis.get(keys.RESTORE_CLAIM)
    assert left is not None and await redis.pttl(keys.RESTORE_CLAIM) > 50_000
    return left


async def a_file_of_three(redis, settings, path: Path) -> dict:
    """A backup of three tenants at `path`, then an empty store; what the file holds."""
    await seed_tenants(redis, settings.keyring, 3, now_ms=system_clock())
    await make_backup(redis, settings.keyring, path)
    before = backed_up(await image(redis))
    await redis.flushall()
    return before


@pytest.mark.parametrize("reused", [False, True], ids=["pid-gone", "pid-reused"])
async def test_a_restore_killed_outright_is_finished_at_once_by_running_it_again(
    redis, settings, master_key_b64, tmp_path, reused
):
    path = tmp_path / "kr.backup"
    before = await a_file_of_three(redis, settings, path)
    env = cli_env(settings, master_key_b64)
    left = await killed_midway(redis, path, env)
    if reused:  # its pid given since to a later process (this one): not the holder
        held = json.loads(left)
        await redis.set(keys.RESTORE_CLAIM, json.dumps({**held, "pid": os.getpid()}), px=60_000)

    again = rotator("restore", str(path), env=env)  # at once: not a minute later

    assert again.returncode == 0, again.stderr
    assert "finished an interrupted restore of this file" in again.stdout, again.stdout
    assert_same(before, backed_up(await image(redis)))
    assert await redis.get(keys.RESTORE_CLAIM) is None


@pytest.mark.parametrize(
    "field", ["host", "boot", "pid_ns"],
    ids=["another-host", "another-machine-same-host-name", "another-container"],
)  # fmt: skip
async def test_a_holder_that_may_be_alive_elsewhere_is_waited_for(
    redis, settings, master_key_b64, tmp_path, field
):
    """Its pid says nothing here: it keeps the claim until it lapses."""
    path = tmp_path / "kr.backup"
    await a_file_of_three(redis, settings, path)
    env = cli_env(settings, master_key_b64)
    held = json.loads(await killed_midway(redis, path, env))
    await redis.set(keys.RESTORE_CLAIM, json.dumps({**held, field: "elsewhere"}), px=60_000)

    refused = rotator("restore", str(path), env=env)

    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith(f"rotator: another restore is running: {path}, since ")
    assert "wait for it to finish (if it died, its claim lapses within 60 s)" in refused.stderr
    assert len(await redis.smembers(keys.TENANTS)) == 1  # nothing more written


async def test_of_many_runs_that_find_the_holder_gone_one_takes_its_claim(
    redis, settings, master_key_b64, tmp_path
):
    path = tmp_path / "kr.backup"
    await a_file_of_three(redis, settings, path)
    await killed_midway(redis, path, cli_env(settings, master_key_b64))

    async def attempt() -> str:
        try:
            async with claims.claimed(
                redis, keys.RESTORE_CLAIM, what="restore", about=str(path), now_ms=system_clock()
            ):
                await asyncio.sleep(0.5)  # held while the others try
                return "took"
        except claims.Claimed:
            return "refused"

    outcomes = await asyncio.gather(*(attempt() for _ in range(8)))

    assert sorted(outcomes) == ["refused"] * 7 + ["took"]
