"""Data-format migrations (store/migrations.py, `rotator migrate`): an old-format store is
brought up to date once, idempotently, resuming after an interruption; a newer store is
refused; the delivery script has no fallback for the old format."""

from __future__ import annotations

import itertools
import json

import pytest

from rotator.domain import errors, tokens
from rotator.domain.iprange import ip_hex
from rotator.embedded import free_port
from rotator.store import apps, keys, migrations, services, tenants
from rotator.store.connection import Durability
from rotator.store.delivery import DeliveryStore
from rotator.store.fastredis import ReplyError
from tests.conftest import T0_MS
from tests.integration.test_cli import base_env, rotator

pytestmark = pytest.mark.backends("single", "cluster")

COPIES = ["@" + f for f in keys.COPIED_TENANT_FIELDS]


@pytest.fixture
async def store(settings, clock):
    s = await DeliveryStore.open(settings, clock, fixed_clock=True)
    yield s
    await s.close()


NAMES = itertools.count()
"""Tenant names are unique: a test may make more than one old tenant."""


async def old_format_tenant(redis, settings, *, slugs=("a", "b"), allow=None):
    """A tenant as a version before schema 2 stored it: services without the tenant copies,
    and no kr:schema (written through today's store functions, then the copies removed)."""
    d = Durability()
    created = await tenants.create_tenant(
        redis, d, name=f"old {next(NAMES)}", demo=False, now_ms=T0_MS
    )
    tid = created.id
    if allow:
        await tenants.update_tenant(redis, d, settings.keyring, tid, ip_allowlist=allow)
    for slug in slugs:
        await services.create_service(redis, d, tid, slug=slug, policy="usage", now_ms=T0_MS)
        await services.add_key(redis, d, settings.keyring, tid, slug, label="k",
                               secret="sk-" + "x" * 20, now_ms=T0_MS)  # fmt: skip
        await redis.hdel(keys.service(tid, slug), *COPIES)
    await redis.delete(keys.SCHEMA)
    token = tokens.parse(created.client_token)
    assert token is not None
    return tid, token


@pytest.fixture
def cli_env(valkey, master_key_b64, tmp_path, redis) -> dict[str, str]:
    return base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
    )


def quiet(_: str) -> None:
    pass


async def test_an_old_store_is_migrated_and_then_delivers(redis, settings, store):
    tid, token = await old_format_tenant(redis, settings, allow=["10.0.0.0/8"])
    before = await migrations.status(redis)
    assert before.stored == 1
    assert [(m.name, n) for m, n in before.steps] == [
        ("service_copies", 2),
        ("allowlist_packing", 0),
        ("masked_forms", 0),
    ]
    # no hot-path fallback any more: an unmigrated service is refused loudly, never served
    # as if it had no allowlist
    with pytest.raises(ReplyError, match="rotator migrate"):
        await store.next_key(token, "a", ip_hex("192.0.2.1"))

    lines: list[str] = []
    await migrations.migrate(redis, Durability(), lines.append)

    assert await redis.get(keys.SCHEMA) == str(keys.SCHEMA_VERSION).encode()
    tenant = await redis.hmget(keys.tenant(tid), list(keys.COPIED_TENANT_FIELDS))
    for slug in ("a", "b"):
        assert await redis.hmget(keys.service(tid, slug), COPIES) == tenant
    assert any("service_copies: done, 2 changed" in line for line in lines)
    with pytest.raises(errors.IpNotAllowed):
        await store.next_key(token, "a", ip_hex("192.0.2.1"))
    assert (await store.next_key(token, "a", ip_hex("10.0.0.1"))).usage_today == 1


async def test_migrating_twice_changes_nothing(redis, settings):
    await old_format_tenant(redis, settings)
    await migrations.migrate(redis, Durability(), quiet)
    lines: list[str] = []
    again = await migrations.migrate(redis, Durability(), lines.append)
    assert (again.stored, again.steps, lines) == (keys.SCHEMA_VERSION, [], [])


async def test_an_interrupted_migration_resumes_and_records_the_version_last(redis, settings):
    first, _ = await old_format_tenant(redis, settings)
    second, _ = await old_format_tenant(redis, settings)

    class Crash(Exception):
        pass

    def crash_after_first_tenant(line: str) -> None:
        if "copies written" in line:
            raise Crash(line)

    with pytest.raises(Crash):
        await migrations.migrate(redis, Durability(), crash_after_first_tenant)
    assert await redis.get(keys.SCHEMA) is None  # not recorded: the step did not finish
    halfway = await migrations.status(redis)
    assert [(m.name, n) for m, n in halfway.steps] == [
        ("service_copies", 2),  # one tenant left
        ("allowlist_packing", 0),
        ("masked_forms", 0),
    ]

    await migrations.migrate(redis, Durability(), quiet)
    assert (await migrations.status(redis)).steps == []
    for tid in (first, second):
        assert None not in await redis.hmget(keys.service(tid, "a"), COPIES)


WHOLE_SPACE_AS_ONE_RANGE = "0" * 32 + "f" * 32
"""::/0 as format 2 packed it: one range over the whole space, IPv4 (::ffff:0:0/96) in it."""


async def test_allowlists_packed_before_format_3_stop_admitting_ipv4(redis, settings, store):
    d = Durability()
    created = await tenants.create_tenant(redis, d, name="v6", demo=False, now_ms=T0_MS)
    tid = created.id
    await tenants.update_tenant(redis, d, settings.keyring, tid, ip_allowlist=["::/0"])
    await services.create_service(redis, d, tid, slug="a", policy="usage", now_ms=T0_MS)
    await services.add_key(redis, d, settings.keyring, tid, "a", label="k",
                           secret="sk-" + "x" * 20, now_ms=T0_MS)  # fmt: skip
    app = await apps.add_app(redis, d, tid, name="v6 app", ip_allowlist=["::/0"], now_ms=T0_MS)
    # as format 2 stored them: the tenant's packing (and its copy) and the app's
    await redis.hset(keys.tenant(tid), "allow", WHOLE_SPACE_AS_ONE_RANGE)
    await redis.hset(keys.service(tid, "a"), "@allow", WHOLE_SPACE_AS_ONE_RANGE)
    await redis.hset(keys.app(tid, app.id), "allow", WHOLE_SPACE_AS_ONE_RANGE)
    await redis.set(keys.SCHEMA, 2)
    client = tokens.parse(created.client_token)
    app_token = tokens.parse(app.app_token)
    assert client is not None and app_token is not None
    ipv4, ipv6 = ip_hex("192.0.2.1"), ip_hex("2001:db8::1")
    assert (await store.next_key(app_token, "a", ipv4)).usage_today == 1  # the defect

    before = await migrations.status(redis)
    assert [(m.name, n) for m, n in before.steps] == [("allowlist_packing", 2), ("masked_forms", 0)]
    lines: list[str] = []
    await migrations.migrate(redis, Durability(), lines.append)

    assert f"tenant {tid}: allowlists packed anew (1 app(s))" in lines
    for token in (client, app_token):
        with pytest.raises(errors.IpNotAllowed):
            await store.next_key(token, "a", ipv4)
    assert (await store.next_key(client, "a", ipv6)).usage_today == 2
    assert (await store.next_key(app_token, "a", ipv6)).usage_today == 3
    assert (await apps.get_app(redis, tid, app.id)).ip_allowlist == ["::/0"]
    assert (await migrations.status(redis)).steps == []


async def test_masked_forms_stored_before_format_4_show_a_known_prefix_only(redis, settings):
    d = Durability()
    tid = (await tenants.create_tenant(redis, d, name="m", demo=False, now_ms=T0_MS)).id
    await services.create_service(redis, d, tid, slug="a", policy="usage", now_ms=T0_MS)
    secrets = ("qz_kx-9f8G7h6J5k4L3m2N1p0", "sk-proj-abcdefghijklmnopqrstuv1234")
    for secret in secrets:
        await services.add_key(redis, d, settings.keyring, tid, "a", label="k", secret=secret,
                               now_ms=T0_MS)  # fmt: skip
    # as format 3 stored them: up to two lowercase groups shown as a "prefix"
    await redis.hset(keys.service(tid, "a"), "k:1", "qz_kx-" + "•" * 15 + "N1p0")
    await redis.set(keys.SCHEMA, 3)

    before = await migrations.status(redis)
    assert [(m.name, n) for m, n in before.steps] == [("masked_forms", 1)]
    lines: list[str] = []
    await migrations.migrate(redis, Durability(), lines.append)

    assert f"tenant {tid}: 1 masked form(s) shortened" in lines
    listed = {k.id: k.key_masked for k in await services.list_keys(redis, tid, "a")}
    assert listed == {1: "•" * 21 + "N1p0", 2: "sk-proj-" + "•" * 22 + "1234"}
    assert (await migrations.status(redis)).steps == []


async def test_an_empty_store_is_current_and_a_newer_one_is_refused(redis):
    assert (await migrations.status(redis)) == (keys.SCHEMA_VERSION, [])
    await migrations.migrate(redis, Durability(), quiet)
    assert await redis.get(keys.SCHEMA) == str(keys.SCHEMA_VERSION).encode()
    await redis.set(keys.SCHEMA, keys.SCHEMA_VERSION + 1)
    with pytest.raises(migrations.StoreTooNew, match="newer than this version"):
        await migrations.migrate(redis, Durability(), quiet)


@pytest.mark.backends("single")
async def test_the_command_checks_migrates_and_refuses(cli_env, redis, settings):
    tid, _ = await old_format_tenant(redis, settings)

    check = rotator("migrate", "--check", "--json", env=cli_env)
    assert check.returncode == 1, check.stderr
    assert json.loads(check.stdout) == {
        "stored_version": 1, "code_version": keys.SCHEMA_VERSION,
        "pending": "2:service_copies,3:allowlist_packing,4:masked_forms", "items": 2,
        "migrated": False,
    }  # fmt: skip
    assert "pending: migration 2 service_copies (2 to change)" in check.stderr
    assert await redis.hget(keys.service(tid, "a"), "@client") is None  # --check wrote nothing

    done = rotator("migrate", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "migrated: True" in done.stdout
    assert f"tenant {tid}: copies written into 2 service(s)" in done.stderr
    assert rotator("migrate", "--check", env=cli_env).returncode == 0

    await redis.set(keys.SCHEMA, keys.SCHEMA_VERSION + 1)
    refused = rotator("migrate", env=cli_env)
    assert refused.returncode == 2
    assert "newer than this version" in refused.stderr
    # serve migrates before it serves, so it refuses such a store before listening
    serve = rotator("serve", env={**cli_env, "ROTATOR_PORT": str(free_port())}, timeout=60)
    assert serve.returncode == 2
    assert "newer than this version" in serve.stderr
    # the worker migrates nothing, but does not work on data it would misread either
    worker = rotator("worker", env=cli_env, timeout=60)
    assert worker.returncode == 2
    assert "newer than this version" in worker.stderr


@pytest.mark.backends("single")
async def test_an_unreadable_version_is_named_not_a_traceback(cli_env, redis):
    await redis.set(keys.SCHEMA, "garbage")
    for args in (("migrate", "--check"), ("migrate",)):
        done = rotator(*args, env=cli_env)
        assert done.returncode == 2, done.stderr
        assert "kr:schema holds b'garbage', not a data format version" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.backends("single")
async def test_a_backup_from_before_an_upgrade_restores_migrated(
    cli_env, redis, settings, store, tmp_path
):
    """Back up, upgrade, restore the old backup (a rollback of the data): the restored
    tenants are in the old format, so the restore brings them up, and records it."""
    _, token = await old_format_tenant(redis, settings, slugs=("a",))
    backup = tmp_path / "before.krb"
    assert rotator("backup", str(backup), env=cli_env).returncode == 0
    header = json.loads(backup.read_text().splitlines()[0])
    assert header["schema_version"] == 1  # the format the store held, not the code's

    assert rotator("migrate", env=cli_env).returncode == 0  # the upgrade
    done = rotator("restore", "--replace", str(backup), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "migration 2 service_copies: done, 1 changed" in done.stderr

    assert await redis.get(keys.SCHEMA) == str(keys.SCHEMA_VERSION).encode()
    assert rotator("migrate", "--check", env=cli_env).returncode == 0
    assert (await store.next_key(token, "a", ip_hex("192.0.2.1"))).usage_today == 1
    # and a current backup says so: restoring it into an empty store records the format
    current = tmp_path / "after.krb"
    assert rotator("backup", str(current), env=cli_env).returncode == 0
    assert json.loads(current.read_text().splitlines()[0])["schema_version"] == keys.SCHEMA_VERSION
    await redis.flushall()
    assert rotator("restore", str(current), env=cli_env).returncode == 0
    assert await redis.get(keys.SCHEMA) == str(keys.SCHEMA_VERSION).encode()


@pytest.mark.backends("single")
async def test_a_replacing_restore_migrates_the_tenants_it_keeps(
    cli_env, redis, settings, store, tmp_path
):
    """A current-format backup restored with --replace into a store not yet migrated: the
    tenants it keeps are in the store's older format, so they are brought up too."""
    d = Durability()
    other = await tenants.create_tenant(redis, d, name="in the file", demo=False, now_ms=T0_MS)
    await redis.set(keys.SCHEMA, keys.SCHEMA_VERSION)  # the backup is of the current format
    backup = tmp_path / "current.krb"
    assert rotator("backup", str(backup), env=cli_env).returncode == 0
    kept = await tenants.create_tenant(redis, d, name="kept", demo=False, now_ms=T0_MS)
    await services.create_service(redis, d, kept.id, slug="a", policy="usage", now_ms=T0_MS)
    await services.add_key(redis, d, settings.keyring, kept.id, "a", label="k",
                           secret="sk-" + "x" * 20, now_ms=T0_MS)  # fmt: skip
    app = await apps.add_app(redis, d, kept.id, name="v6", ip_allowlist=["::/0"], now_ms=T0_MS)
    await redis.hset(keys.app(kept.id, app.id), "allow", WHOLE_SPACE_AS_ONE_RANGE)
    await redis.set(keys.SCHEMA, 2)

    assert json.loads(backup.read_text().splitlines()[0])["schema_version"] == keys.SCHEMA_VERSION
    done = rotator("restore", "--replace", str(backup), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "migration 3 allowlist_packing: done, 1 changed" in done.stderr
    assert await redis.get(keys.SCHEMA) == str(keys.SCHEMA_VERSION).encode()
    app_token = tokens.parse(app.app_token)
    assert app_token is not None and other.id != kept.id
    with pytest.raises(errors.IpNotAllowed):
        await store.next_key(app_token, "a", ip_hex("192.0.2.1"))
