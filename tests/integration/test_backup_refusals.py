"""`rotator restore` refuses a file that is not a complete, authentic backup, or one whose
secrets the configured master keys cannot open, as a whole: one clear line, nothing written."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable

import pytest

from rotator.crypto import KeyRing
from rotator.domain.clock import system_clock
from rotator.store import keys
from rotator.store.backup import dump
from tests.integration.backup_support import (
    cli_env,
    make_backup,
    seed_tenants,
    tenant_keys_in,
)
from tests.integration.cli_support import rotator


def truncate_mid_line(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-1], lines[-1][:-30]]


def drop_end_record(lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


def flip_a_byte(lines: list[bytes]) -> list[bytes]:
    line = bytearray(lines[2])
    at = line.index(b'"name"') + 2
    line[at] ^= 0x01  # "name" -> "oame": still JSON, no longer what was MACed
    return [*lines[:2], bytes(line), *lines[3:]]


def swap_two_tenants(lines: list[bytes]) -> list[bytes]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


def newer_schema(lines: list[bytes]) -> list[bytes]:
    newer = b'"schema_version":%d' % (keys.SCHEMA_VERSION + 1)
    return [re.sub(rb'"schema_version":\d+', newer, lines[0]), *lines[1:]]


def not_a_backup(lines: list[bytes]) -> list[bytes]:
    return [b'{"hello": "world"}\n']


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncate_mid_line, "line 5 is cut short: the file is truncated"),
        (drop_end_record, "ends after line 4 without its end record: the file is truncated"),
        (
            flip_a_byte,
            "line 3 does not match its MAC: the file was changed, damaged, or its lines reordered",
        ),
        (swap_two_tenants, "line 2 does not match its MAC"),
        (
            newer_schema,
            f"store schema version {keys.SCHEMA_VERSION + 1}, newer than this rotator's "
            f"({keys.SCHEMA_VERSION})",
        ),
        (not_a_backup, "is not a keyrotator backup (line 1 is not its header)"),
    ],
)
async def test_a_damaged_file_is_refused_as_a_whole(
    damage: Callable[[list[bytes]], list[bytes]],
    message: str,
    redis,
    settings,
    master_key_b64,
    tmp_path,
):
    await seed_tenants(redis, settings.keyring, 3, now_ms=system_clock())
    path = tmp_path / "kr.backup"
    await make_backup(redis, settings.keyring, path)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 5  # header, three tenants, end
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(b"".join(damage(lines)))
    await redis.flushall()
    env = cli_env(settings, master_key_b64)

    checked = rotator("restore", "--check", str(damaged), env=env)
    assert checked.returncode == 1
    assert message in checked.stderr

    done = rotator("restore", str(damaged), env=env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"rotator: {damaged}")
    assert message in done.stderr and done.stderr.rstrip().endswith("nothing was restored")
    assert await redis.dbsize() == 0  # not a key written: not even the restore's mark


async def test_a_file_made_under_another_master_key_is_refused(
    redis, settings, master_key_b64, tmp_path
):
    other = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    await seed_tenants(redis, other, 2, now_ms=system_clock())
    path = tmp_path / "other.backup"
    await make_backup(redis, other, path)
    await redis.flushall()

    done = rotator("restore", str(path), env=cli_env(settings, master_key_b64))

    assert done.returncode == 2  # a settings problem, as the same refusal at start
    assert done.stderr.startswith("rotator: ROTATOR_MASTER_KEY: ")
    assert f"authenticated with master key {other.primary_fingerprint}, which is not " in (
        done.stderr
    )
    assert settings.keyring.primary_fingerprint in done.stderr  # what is configured
    assert await redis.dbsize() == 0


async def test_secrets_sealed_with_a_key_not_configured_are_refused(
    redis, settings, master_key_b64, tmp_path
):
    """Mid-rotation (new key first, data still under the old): the file is MACed with the
    new key, its secrets need the old one. A ring with only the new key opens the file but
    not the secrets: refused, naming the key they need."""
    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    old_ring = KeyRing.parse(old)
    await seed_tenants(redis, old_ring, 2, now_ms=system_clock())
    path = tmp_path / "mid-rotation.backup"
    await dump.write_backup(redis, KeyRing.parse(f"{new},{old}"), path, clock=system_clock)
    await redis.flushall()

    done = rotator("restore", str(path), env=cli_env(settings, new))

    assert done.returncode == 2
    assert "ROTATOR_MASTER_KEY: " in done.stderr
    assert f"sealed with master key {old_ring.primary_fingerprint}" in done.stderr
    assert "nothing was restored" in done.stderr
    assert await redis.dbsize() == 0
    both = rotator("restore", str(path), env=cli_env(settings, f"{new},{old}"))
    assert both.returncode == 0, both.stderr


@pytest.mark.backends("single", "cluster")
async def test_a_store_that_holds_tenants_is_refused_without_replace(
    redis, settings, master_key_b64, tmp_path
):
    theirs = await seed_tenants(redis, settings.keyring, 2, now_ms=system_clock())
    path = tmp_path / "kr.backup"
    await make_backup(redis, settings.keyring, path)
    await redis.flushall()
    ours = await seed_tenants(redis, settings.keyring, 1, now_ms=system_clock())
    before = sorted(await tenant_keys_in(redis))

    done = rotator("restore", str(path), env=cli_env(settings, master_key_b64))

    assert done.returncode == 1
    assert "the store already holds 1 tenants (0 of them in" in done.stderr
    assert "pass --replace" in done.stderr and "nothing was restored" in done.stderr
    assert sorted(await tenant_keys_in(redis)) == before
    assert await redis.exists(keys.RESTORE) == 0

    replaced = rotator("restore", "--replace", "--json", str(path),
                       env=cli_env(settings, master_key_b64))  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    summary = json.loads(replaced.stdout)
    assert (summary["tenants"], summary["replaced"], summary["kept"]) == (2, 0, 1)
    in_store = {m.decode() for m in await redis.smembers(keys.TENANTS)}
    assert in_store == {*theirs, *ours}
