"""`rotator backup` / `rotator restore` as an operator sees them: help, progress, summary,
exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from rotator.crypto import KeyRing
from rotator.domain.clock import system_clock
from rotator.embedded import EmbeddedValkey, free_port
from rotator.store import keys
from tests.integration.backup_support import cli_env, seed_tenants
from tests.integration.cli_support import base_env, cut_short, rotator


def test_help_explains_every_option():
    backup = rotator("backup", "--help", env=base_env())
    assert backup.returncode == 0
    for said in ("FILE", "--force", "--json", "sealed", "0600", "Backup and restore"):
        assert said in backup.stdout, said
    restore = rotator("restore", "--help", env=base_env())
    assert restore.returncode == 0
    for said in ("FILE", "--replace", "--check", "--json", "nothing is written", "resumed"):
        assert said in restore.stdout, said
    listed = rotator("--help", env=base_env())
    assert "backup" in listed.stdout and "restore" in listed.stdout


def test_dash_is_not_taken_for_a_file_named_dash(tmp_path):
    """Elsewhere `-` means stdin or stdout: here it is refused, not written as a file."""
    made = subprocess.run(
        [sys.executable, "-m", "rotator.cli", "backup", "-"],
        cwd=tmp_path, env=base_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert made.returncode == 1 and "not stdout" in made.stderr, made.stderr
    assert list(tmp_path.iterdir()) == []
    for args in (["restore", "-"], ["restore", "--check", "-"]):
        read = rotator(*args, env=base_env())
        assert read.returncode == 1 and "not stdin" in read.stderr, read.stderr


async def test_progress_on_stderr_and_a_summary_on_stdout(redis, settings, master_key_b64,
                                                          tmp_path):  # fmt: skip
    await seed_tenants(redis, settings.keyring, 3, now_ms=system_clock())
    env = cli_env(settings, master_key_b64)
    path = tmp_path / "kr.backup"

    made = rotator("backup", str(path), env=env)

    assert made.returncode == 0, made.stderr
    assert "rotator: backup: 1/3 tenants" in made.stderr
    assert "rotator: backup: 3/3 tenants" in made.stderr
    assert made.stdout.count("\n") == 1 and made.stdout.startswith("backed up 3 tenants (")
    assert master_key_b64 not in made.stdout + made.stderr

    again = rotator("backup", str(path), env=env)
    assert again.returncode == 1
    assert again.stderr == (
        f"rotator: {path} exists; --force overwrites it, or choose another name\n"
    )
    for args in ([str(tmp_path)], ["--force", str(tmp_path)]):  # a directory is no FILE
        into_dir = rotator("backup", *args, env=env)
        assert into_dir.returncode == 1, into_dir.stderr
        assert into_dir.stderr == (
            f"rotator: {tmp_path} is a directory: give the path of the file to write, e.g. "
            f"{tmp_path / 'keyrotator.backup'}\n"
        )
    forced = rotator("backup", "--force", "--json", str(path), env=env)
    assert forced.returncode == 0, forced.stderr
    summary = json.loads(forced.stdout)
    assert (summary["tenants"], summary["vanished"]) == (3, 0)
    assert summary["sealed_with"] == [settings.keyring.primary_fingerprint]
    assert forced.stderr == ""  # --json: no progress lines either

    checked = rotator("restore", "--check", str(path), env=env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{path}: a complete backup of 3 tenants (")
    await redis.flushall()
    restored = rotator("restore", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    assert "rotator: restore: 3/3 tenants" in restored.stderr
    assert restored.stdout.startswith("restored 3 tenants (")
    assert restored.stdout.count("\n") == 1


async def test_a_reader_of_stderr_that_went_away_does_not_stop_a_restore(
    redis, settings, master_key_b64, tmp_path
):
    """`rotator restore FILE 2>&1 | head -1`: progress is advice; the restore finishes."""
    await seed_tenants(redis, settings.keyring, 3, now_ms=system_clock())
    env, path = cli_env(settings, master_key_b64), tmp_path / "kr.backup"
    assert (made := rotator("backup", str(path), env=env)).returncode == 0, made.stderr
    await redis.flushall()
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rotator.cli", "restore", str(path)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=write_end,
            text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert done.stdout.startswith("restored 3 tenants (")
    assert await redis.scard(keys.TENANTS) == 3
    assert await redis.hexists(keys.RESTORE, "finished_ms")


def test_a_store_that_does_not_answer_is_exit_2(master_key_b64, tmp_path):
    env = base_env(
        ROTATOR_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_REDIS_TIMEOUT_MS="200",
    )
    done = rotator("backup", str(tmp_path / "kr.backup"), env=env)
    assert done.returncode == 2
    assert "ROTATOR_REDIS_URL" in done.stderr
    assert not (tmp_path / "kr.backup").exists()


async def test_a_file_that_cannot_be_written_is_said_plainly(redis, settings, master_key_b64,
                                                             tmp_path):  # fmt: skip
    await seed_tenants(redis, settings.keyring, 1, now_ms=system_clock())
    missing = tmp_path / "no-such-dir" / "kr.backup"

    done = rotator("backup", str(missing), env=cli_env(settings, master_key_b64))

    assert done.returncode == 1  # the file's problem, not the store's (exit 2)
    assert done.stderr == f"rotator: {missing}: cannot write there (No such file or directory)\n"


async def test_an_empty_store_backs_up_and_restores(redis, settings, master_key_b64, tmp_path):
    env = cli_env(settings, master_key_b64)
    path = tmp_path / "empty.backup"
    made = rotator("backup", "--json", str(path), env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["tenants"] == 0
    assert len(path.read_bytes().splitlines()) == 2  # header and end
    restored = rotator("restore", "--json", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["tenants"] == 0


RESUMES = (
    "the tenants restored so far are whole; run the same restore again to finish it (a "
    "restore of the same file resumes)\n"
)


@pytest.mark.parametrize(
    ("cut_short_by", "code", "said"),
    [
        ("ctrl_c", 130, "rotator: interrupted: " + RESUMES),
        # a write slower than ROTATOR_REDIS_TIMEOUT_MS: why it stopped, and how to finish
        ("timeout", 2, "rotator: store unavailable (TimeoutError); check ROTATOR_REDIS_URL: "
                       + RESUMES),
    ],
)  # fmt: skip
async def test_a_restore_cut_short_says_how_to_finish_it(
    master_key_b64, tmp_path, cut_short_by, code, said
):
    server = EmbeddedValkey(tmp_path / "valkey")  # its own: the test pauses its writes
    server.start()
    r = aioredis.Redis.from_url(server.url)
    try:
        await seed_tenants(r, KeyRing.parse(master_key_b64), 2, now_ms=system_clock())
        env = base_env(
            ROTATOR_REDIS_URL=server.url,
            ROTATOR_MASTER_KEY=master_key_b64,
            ROTATOR_DATA_DIR=str(tmp_path),
            ROTATOR_REDIS_TIMEOUT_MS="60000",
        )
        path = tmp_path / "kr.backup"
        assert rotator("backup", str(path), env=env).returncode == 0
        await r.flushall()
        restore = await cut_short(r, ["restore", str(path)], env, cut_short_by)
        out, err = restore.stdout, restore.stderr
        assert restore.returncode == code, err
        assert out == ""
        assert err.endswith(said), err
        again = rotator("restore", str(path), env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("restored 2 tenants (")
    finally:
        await r.aclose()
        server.stop()
