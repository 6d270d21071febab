"""The `rotator` command line, run as a real subprocess against the test Valkey.

That every command's `--json` is the API's JSON: tests/integration/test_cli_json.py."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rotator.cli import processes as cli
from rotator.crypto import KeyRing, aad_for_key
from rotator.embedded import free_port
from rotator.settings import Settings
from rotator.store import keys, services, tenants
from rotator.store.connection import Durability
from tests.integration.cli_support import base_env, rotator

SECRET = "sk-proj-cli-0123456789abcdefghijklmnop"


async def test_tenant_service_key_end_to_end(cli_env, redis, client, settings):
    created = rotator("tenant", "create", "acme", "--json", env=cli_env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert tenant["admin_token"].startswith(f"kta_{tenant['id']}_")
    assert "shown once" in created.stderr

    svc = rotator("service", "create", tenant["id"], "openai", "--policy", "usage",
                  "--max-daily", "100", env=cli_env)  # fmt: skip
    assert svc.returncode == 0, svc.stderr
    assert "policy: usage" in svc.stdout and "max_daily_requests: 100" in svc.stdout

    added = rotator("key", "add", tenant["id"], "openai", "--label", "Primary", "--json",
                    env=cli_env, stdin=SECRET + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)
    assert SECRET not in added.stdout + added.stderr
    assert key["key_masked"].endswith("mnop") and key["label"] == "Primary"

    # stored sealed and bound to its record
    blob = await redis.hget(keys.service(tenant["id"], "openai"), f"c:{key['id']}")
    assert SECRET.encode() not in blob
    aad = aad_for_key(tenant["id"], "openai", key["id"])
    assert settings.keyring.open(blob, aad).decode() == SECRET

    # and served: what the CLI made is what a client app gets
    r = await client.get("/v1/next", params={"service": "openai", "token": tenant["client_token"]})
    assert r.status_code == 200 and r.json()["key"] == SECRET

    app = rotator("app", "create", tenant["id"], "web", "--allow", "10.0.0.0/8",
                  "--max-daily", "5", "--json", env=cli_env)  # fmt: skip
    assert app.returncode == 0, app.stderr
    assert json.loads(app.stdout)["app_token"].startswith(f"kra_{tenant['id']}_")


def test_refusals_name_the_commands_own_flags(cli_env):
    rotator("tenant", "create", "acme", env=cli_env)
    rotator("service", "create", "acme", "openai", "--policy", "usage", env=cli_env)
    bad = rotator("tenant", "update", "acme", "--allow", "10.0.0.0/33", env=cli_env)
    assert bad.returncode == 1 and bad.stderr.startswith("rotator: --allow: "), bad.stderr
    ttl = rotator("service", "update", "acme", "openai", "--ttl-minutes", "5", env=cli_env)
    assert ttl.returncode == 1
    assert ttl.stderr.startswith("rotator: --ttl-minutes: only a time policy"), ttl.stderr
    slug = rotator("service", "create", "acme", "Bad Slug", "--policy", "usage", env=cli_env)
    assert slug.returncode == 1 and slug.stderr.startswith("rotator: SLUG: "), slug.stderr


def test_a_tenant_is_named_by_id_or_by_name(cli_env):
    first = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    by_id = rotator("tenant", "show", first["id"], "--json", env=cli_env)
    by_name = rotator("tenant", "show", "acme", "--json", env=cli_env)
    assert by_id.returncode == by_name.returncode == 0
    assert json.loads(by_id.stdout) == json.loads(by_name.stdout)
    again = rotator("tenant", "create", "acme", env=cli_env)
    assert again.returncode == 1
    assert again.stderr == f"rotator: NAME: already used by tenant {first['id']}\n", again.stderr
    # a tenant may rename itself to another's name (it is not told of others): then the
    # name names neither
    second = json.loads(rotator("tenant", "create", "globex", "--json", env=cli_env).stdout)
    renamed = rotator("tenant", "update", "globex", "--name", "acme", env=cli_env)
    assert renamed.returncode == 0, renamed.stderr
    twice = rotator("tenant", "show", "acme", env=cli_env)
    assert twice.returncode == 1 and first["id"] in twice.stderr and second["id"] in twice.stderr
    none = rotator("tenant", "show", "nobody", env=cli_env)
    assert none.returncode == 1 and "no tenant with the id or name 'nobody'" in none.stderr


def test_people_get_tables(cli_env):
    rotator("tenant", "create", "acme", env=cli_env)
    rotator("service", "create", "acme", "openai", "--policy", "usage", env=cli_env)
    rotator("key", "add", "acme", "openai", "--label", "Primary", env=cli_env, stdin=SECRET)
    listed = rotator("key", "list", "acme", "openai", env=cli_env)
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "id", "label", "state", "current", "failures", "last_report", "max_daily_requests",
        "max_requests_per_minute", "weight", "key_masked", "expires_at", "created_at",
    ]  # fmt: skip
    # usage: no current key; no failure, no report yet; no daily limit
    assert row.split()[1:7] == ["Primary", "active", "no", "0", "-", "-"]
    assert SECRET not in listed.stdout


async def test_refusals_are_one_line_and_write_nothing(cli_env, redis):
    missing = rotator("service", "create", "0123456789abcdef", "openai", "--policy", "usage",
                      env=cli_env)  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr == "rotator: no tenant with the id or name '0123456789abcdef'\n"
    assert await redis.dbsize() == 0

    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    bad = rotator("service", "create", tenant["id"], "Bad Slug", "--policy", "usage",
                  env=cli_env)  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("rotator: SLUG: ")
    empty = rotator("key", "add", tenant["id"], "nope", "--label", "x", env=cli_env,
                    stdin="")  # fmt: skip
    assert empty.returncode == 1 and empty.stderr == "rotator: secret: must not be empty\n"


def to_a_closed_pipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS | head -c0`: the reader is gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "rotator.cli", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE,
            text=True, timeout=30,
        )  # fmt: skip
    finally:
        os.close(write_end)


OUTPUT_CLOSED = (
    "rotator: stdout was closed before all output was written; the command itself was done"
)


async def test_a_reader_that_went_away_is_not_the_store_being_down(cli_env, redis):
    """`rotator tenant create ... | head -c0`: the tenant is made, only the output is lost;
    exit 141 as a shell reports SIGPIPE, never 2 (which a script retries: a second tenant)."""
    done = to_a_closed_pipe("tenant", "create", "acme", "--json", env=cli_env)
    assert done.returncode == 141, done.stderr
    assert done.stderr == OUTPUT_CLOSED + " (a token it printed is lost: issue a new one)\n"
    assert len(await redis.smembers(keys.TENANTS)) == 1


def test_a_lost_token_is_mentioned_only_when_the_command_made_one(cli_env, tmp_path):
    """`rotator tenant info X | head -3` prints no token: nothing to issue again. Nor does a
    command that prints the token its --token-file gave: the caller has it."""
    rotator("tenant", "create", "acme", env=cli_env)
    for args in (["tenant", "info", "acme"], ["tenant", "list", "--json"]):
        done = to_a_closed_pipe(*args, env=cli_env)
        assert (done.returncode, done.stderr) == (141, OUTPUT_CLOSED + "\n"), args
    hosted = tmp_path / "hosted-token.txt"
    hosted.write_text("acme-hosted-client-token-0123456789\n")
    kept = to_a_closed_pipe("tenant", "client-token", "acme", "--token-file", str(hosted),
                            env=cli_env)  # fmt: skip
    assert (kept.returncode, kept.stderr) == (141, OUTPUT_CLOSED + "\n")
    new = to_a_closed_pipe("tenant", "client-token", "acme", env=cli_env)
    assert new.stderr == OUTPUT_CLOSED + " (a token it printed is lost: issue a new one)\n"


def test_flags_that_set_one_field_two_ways_are_refused(cli_env):
    """--allow with --allow-any, --webhook-url with --no-webhook: which one was meant?"""
    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    app = json.loads(rotator("app", "create", "acme", "web", "--json", env=cli_env).stdout)
    for args in (
        ["tenant", "update", "acme", "--allow", "10.0.0.0/8", "--allow-any"],
        ["app", "update", "acme", str(app["id"]), "--allow-any", "--allow", "10.0.0.0/8"],
        ["tenant", "update", "acme", "--webhook-url", "https://example.com/h", "--no-webhook"],
    ):
        r = rotator(*args, env=cli_env)
        assert r.returncode == 1, (args, r.stderr)
        assert "not allowed with argument" in r.stderr, r.stderr
    shown = json.loads(rotator("tenant", "show", tenant["id"], "--json", env=cli_env).stdout)
    assert shown["ip_allowlist"] == [] and shown["webhook_url"] is None


def test_the_secret_is_never_an_argument(cli_env):
    r = rotator("key", "add", "t", "s", "--label", "x", "--secret", SECRET, env=cli_env)
    assert r.returncode == 1 and "unrecognized arguments" in r.stderr  # 2 is the store's


def test_a_command_line_that_does_not_parse_is_exit_1_like_any_bad_input(cli_env):
    for args in (["key", "add", "t", "s", "--label", "x", "--max-daily", "-1"],
                 ["tenant"], ["no-such-command"]):  # fmt: skip
        r = rotator(*args, env=cli_env)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.startswith("usage: rotator") and "error: " in r.stderr


def test_a_word_too_many_is_refused_with_that_commands_own_usage(cli_env):
    """Not the top-level usage (`rotator [-h] COMMAND ...`), which says nothing of the
    command that was mistyped."""
    for command, extra in (("audit", "acme"), ("tenant list", "acme"),
                           ("restore a.krb", "b.krb")):  # fmt: skip
        r = rotator(*command.split(), extra, env=cli_env)
        assert r.returncode == 1, (command, r.stderr)
        name = command.removesuffix(" a.krb")
        assert r.stderr.startswith(f"usage: rotator {name} [-h]"), r.stderr
        assert f"rotator {name}: error: unrecognized arguments: {extra}" in r.stderr


def test_numbers_are_read_as_every_other_door_reads_them(cli_env):
    """ASCII digits only, as the API, the console and key files: not int()'s other scripts."""
    for number in ("\u0663", "\u0661\u0660", "\u00b2"):
        r = rotator("service", "create", "t", "s", "--policy", "usage", "--max-daily", number,
                    env=cli_env)  # fmt: skip
        assert r.returncode == 1, (number, r.stderr)
        assert f"argument --max-daily: {number!r} is not an integer" in r.stderr


@pytest.mark.parametrize("command", [["migrate", "--check"], ["rewrap"]])
def test_json_help_of_a_command_with_no_api_operation_names_its_own_fields(cli_env, command):
    """`rotator migrate` and `rewrap` are no API operation: their --json is their own
    object, and their help names its fields, not "the API's JSON"."""
    helped = rotator(command[0], "--help", env=cli_env)
    assert helped.returncode == 0
    json_help = " ".join(helped.stdout.split("--json", 2)[2].split())
    assert "API" not in json_help and "one JSON object" in json_help, json_help
    done = rotator(*command, "--json", env=cli_env)
    assert done.returncode in (0, 1), done.stderr
    for field in json.loads(done.stdout):
        assert field in json_help, field


def test_help_lists_every_setting_with_its_default():
    r = rotator("--help", env=base_env())
    assert r.returncode == 0
    for name, default, doc in Settings.describe():
        assert f"  {name:<31} default {default}\n" in r.stdout
        assert doc[:40] in r.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROTATOR_MASTER_KEY": "not-a-key"}, "rotator: ROTATOR_MASTER_KEY: not base64"),
        ({"ROTATOR_PORT": "http"}, "rotator: ROTATOR_PORT: 'http' is not an integer"),
        ({"ROTATOR_REDIS_URL": "localhost:6379"}, "rotator: ROTATOR_REDIS_URL: must start"),
        ({"ROTATOR_ADMIN_TOKEN": "a"}, "rotator: ROTATOR_ADMIN_TOKEN: must be at least 20"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, env, message):
    for command in (["serve"], ["tenant", "list"], ["worker"]):
        r = rotator(*command, env=base_env(ROTATOR_DATA_DIR=str(tmp_path), **env))
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(message) and r.stderr.count("\n") == 1
        assert "Traceback" not in r.stderr


def test_unreachable_redis_names_the_setting(tmp_path, master_key_b64):
    env = base_env(
        ROTATOR_REDIS_URL=f"redis://:hunter2@127.0.0.1:{free_port()}",
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
    )
    for command in (["serve"], ["tenant", "create", "x"]):
        r = rotator(*command, env=env)
        assert r.returncode == 2
        assert r.stderr.startswith("rotator: ROTATOR_REDIS_URL: ") and r.stderr.count("\n") == 1
        assert "hunter2" not in r.stderr


@pytest.mark.timeout(120)
def test_a_command_that_starts_a_new_store_says_so(tmp_path):
    """The data dir is relative: a command run from another directory would otherwise work
    on a new, empty store, silently."""
    data_dir = tmp_path / "elsewhere" / "var"
    env = base_env(ROTATOR_DATA_DIR=str(data_dir))
    first = rotator("tenant", "list", env=env)
    assert first.returncode == 0, first.stderr
    assert f"note: started a new, empty store in {data_dir.resolve()}" in first.stderr
    again = rotator("tenant", "list", env=env)
    assert again.returncode == 0 and "new, empty store" not in again.stderr


def test_no_master_key_outside_embedded_mode_is_refused(valkey, tmp_path, master_key_b64, redis):
    env = base_env(ROTATOR_REDIS_URL=valkey.url, ROTATOR_DATA_DIR=str(tmp_path))
    r = rotator("key", "add", "t", "s", "--label", "x", env=env, stdin=SECRET)
    assert r.returncode == 2 and r.stderr.startswith("rotator: ROTATOR_MASTER_KEY: not set")
    assert "the store holds no sealed data yet: set ROTATOR_MASTER_KEY to a new key" in r.stderr
    assert not (tmp_path / "master.key").exists()
    # once data is sealed, the message names the key it needs
    keyed = {**env, "ROTATOR_MASTER_KEY": master_key_b64}
    assert rotator("tenant", "create", "acme", env=keyed).returncode == 0
    assert rotator("service", "create", "acme", "s", "--policy", "usage", env=keyed).returncode == 0
    sealed = rotator("key", "add", "acme", "s", "--label", "x", env=keyed, stdin=SECRET)
    assert sealed.returncode == 0, sealed.stderr
    fingerprint = KeyRing.parse(master_key_b64).fingerprints[0]
    r = rotator("key", "add", "acme", "s", "--label", "y", env=env, stdin=SECRET + "2")
    assert r.returncode == 2
    assert f"its data is sealed with master key {fingerprint}" in r.stderr, r.stderr


def test_a_data_dir_that_is_a_file_is_named(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    r = rotator("tenant", "list", env=base_env(ROTATOR_DATA_DIR=str(afile)))
    assert (r.returncode, r.stderr) == (
        2,
        f"rotator: ROTATOR_DATA_DIR: {afile} is not a directory\n",
    )


async def test_rewrap_moves_keys_to_the_first_master_key(cli_env, redis, master_key_b64):
    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    rotator("service", "create", tenant["id"], "s", "--policy", "manual", env=cli_env)
    for i in range(2):
        r = rotator("key", "add", tenant["id"], "s", "--label", f"k{i}", env=cli_env,
                    stdin=f"{SECRET}{i}")  # fmt: skip
        assert r.returncode == 0, r.stderr
    new = base64.b64encode(os.urandom(32)).decode()
    ring = f"next:{new},{master_key_b64}"
    r = rotator("rewrap", "--json", env={**cli_env, "ROTATOR_MASTER_KEY": ring})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"rewrapped": 2, "already_current": 0, "vanished": 0,
                                    "failed": 0}  # fmt: skip
    assert f"tenant {tenant['id']}: 2 rewrapped" in r.stderr
    only_new = KeyRing.parse(f"next:{new}")
    # storage itself: the ciphertexts now open with the new key alone
    stored = await redis.hgetall(keys.service(tenant["id"], "s"))
    opened = sorted(
        only_new.open(stored[f"c:{i}".encode()], aad_for_key(tenant["id"], "s", i)).decode()
        for i in (1, 2)
    )
    assert opened == [f"{SECRET}0", f"{SECRET}1"]


async def test_demo_is_created_once_and_takes_the_guides_token(redis, settings):
    from rotator.domain import tokens

    d = Durability()
    first, created, token1 = await cli.prepare_demo(redis, d, settings.keyring)
    again, created_again, token2 = await cli.prepare_demo(redis, d, settings.keyring)
    assert (created, created_again) == (True, False) and first == again
    assert await redis.get(keys.DEMO_TENANT) == first.encode()
    tenant = await tenants.get_tenant(redis, first)
    assert tenant.demo and tenant.name == "demo"
    service = await services.get_service(redis, first, "openai")
    assert service.policy == "usage"
    assert len(await services.list_keys(redis, first, "openai")) == 3
    # the hosted guide's demo token, imported: its "Try the demo" line works here
    assert token1 == token2 == cli.GUIDE_DEMO_TOKEN
    stored = await redis.hget(keys.tenant(first), "client")  # only its hash is kept
    assert stored.decode() == tokens.hash_imported(cli.GUIDE_DEMO_TOKEN)


async def test_a_demo_whose_guide_token_is_taken_gets_one_of_ours(redis, settings, capsys):
    d = Durability()
    await tenants.create_tenant(
        redis, d, name="kept it", demo=False, client_token=cli.GUIDE_DEMO_TOKEN, now_ms=1
    )
    _, _, token = await cli.prepare_demo(redis, d, settings.keyring)
    assert token.startswith("krc_")
    assert "another tenant's" in capsys.readouterr().err


async def test_the_demo_is_named_apart_from_a_tenant_named_demo(redis, settings):
    d = Durability()
    mine = await tenants.create_tenant(redis, d, name="demo", demo=False, now_ms=1)
    tenant, created, _ = await cli.prepare_demo(redis, d, settings.keyring)
    assert created and tenant != mine.id
    assert (await tenants.get_tenant(redis, tenant)).name == "demo 2"


@pytest.mark.parametrize("embedded", [True, False])
def test_the_banner_never_prints_an_operator_token_it_was_given(settings, capsys, embedded):
    chosen = "op-secret-chosen-by-the-operator"
    args = ("http://127.0.0.1:8080", chosen, False, "t1", False, cli.GUIDE_DEMO_TOKEN)
    cli.print_banner(settings, embedded, *args)
    banner = capsys.readouterr().out
    assert chosen not in banner
    assert "the value of ROTATOR_ADMIN_TOKEN (not shown)" in banner
    assert 'Bearer $ROTATOR_ADMIN_TOKEN"' in banner
    stops = "the API, the worker and the store" if embedded else "the API and the worker)"
    assert f"Ctrl-C stops {stops}" in banner
    cli.print_banner(settings, embedded, "http://127.0.0.1:8080", "generated", True, "t1",
                     False, cli.GUIDE_DEMO_TOKEN)  # fmt: skip
    assert "operator token:    generated\n" in capsys.readouterr().out  # one of its own: shown


# --- rotator run ---------------------------------------------------------------------------------
def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_serves_the_demo_and_ctrl_c_leaves_no_process(tmp_path):
    port = free_port()
    env = base_env(ROTATOR_DATA_DIR=str(tmp_path / "var"), ROTATOR_PORT=str(port))
    log = tmp_path / "stderr.log"  # a file, not a pipe: the children's logs can never block
    with (
        log.open("w") as stderr_file,
        subprocess.Popen(
            [sys.executable, "-m", "rotator.cli", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        ) as proc,
    ):
        check_run(proc, tmp_path, log)


def check_run(proc: subprocess.Popen, tmp_path: Path, log: Path) -> None:
    try:
        lines = []
        for line in proc.stdout:  # the banner is printed once /healthz answers
            lines.append(line)
            if "v1/next" in line:
                break
        banner = "".join(lines)
        assert "operator token:" in banner and "demo client token:" in banner
        console = re.search(r"(http://\S+)/app +sign in with the demo admin token", banner)
        assert console, banner
        demo_admin = re.search(r"demo admin token: +(kta_\S+)", banner)
        assert demo_admin, banner  # the demo's keys can be managed: the token works
        request = urllib.request.Request(
            console.group(1) + "/v1/tenant",
            headers={"Authorization": f"Bearer {demo_admin.group(1)}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["demo"] is True
        curl = re.search(r'curl -s "([^"]+)"', banner)
        assert curl, banner
        with urllib.request.urlopen(curl.group(1), timeout=10) as response:
            body = json.loads(response.read())
        assert body["service"] == "openai" and body["masked"] is True
        # masked as the guide shows it: the provider's prefix and the last 4 (the demo's keys
        # are sk-demo-…: the rest of the prefix is hidden like any key's middle)
        assert re.fullmatch("sk-\u2022{30,}[A-Za-z0-9_-]{4}", body["key"]), body["key"]

        key_file = tmp_path / "var" / "master.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        children = children_of(proc.pid)
        assert len(children) == 3  # valkey-server, API, worker
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children]
        assert any(b"valkey-server" in c for c in commands)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)  # reparented children are reaped by init asynchronously
        assert not [pid for pid in children if alive(pid)]
        stderr = log.read_text()
        assert "generated a master key" in stderr
        assert stderr.index("stopping API") < stderr.index("stopping worker")
        assert stderr.index("stopping worker") < stderr.index("stopping the embedded Valkey")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
