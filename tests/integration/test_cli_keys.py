"""`rotator key add-file`, `key move` and the services' limit warning, run as real subprocesses
against the test Valkey: the same rules and the same JSON as the API."""

from __future__ import annotations

import json

from tests.integration.cli_support import rotator

SECRETS = [f"sk-proj-file-{i}-abcdefghijklmnopqrstuv" for i in range(4)]


def setup(cli_env, policy: str = "manual") -> dict:
    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    done = rotator("service", "create", "acme", "openai", "--policy", policy, env=cli_env)
    assert done.returncode == 0, done.stderr
    return tenant


async def test_add_file_adds_every_line_in_order(cli_env, client, tmp_path):
    tenant = setup(cli_env)
    path = tmp_path / "keys.txt"
    path.write_text(
        "# exported from the provider's console\n"
        f"{SECRETS[0]}\n"
        "\n"
        f"{SECRETS[1]}\tBackup\n"
        f"{SECRETS[2]},Batch,500\n"
    )
    done = rotator("key", "add-file", "acme", "openai", str(path), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert not any(s in done.stdout + done.stderr for s in SECRETS)  # never echoed
    # the file holds the keys in clear: the command says to delete it, as an import does
    assert f"the keys are sealed in the store: delete {path} now" in done.stderr, done.stderr
    added = json.loads(done.stdout)["keys"]
    ids = [k["id"] for k in added]
    assert [k["label"] for k in added] == [f"Key {ids[0]}", "Backup", "Batch"]
    assert [k["max_daily_requests"] for k in added] == [None, None, 500]
    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
    listed = (await client.get("/v1/services/openai/keys", headers=auth)).json()
    assert json.loads(done.stdout) == {"keys": listed}  # the API's records
    r = await client.get("/v1/next", params={"service": "openai", "token": tenant["client_token"]})
    assert r.json()["key"] == SECRETS[0]

    # from stdin, with a table for people
    more = rotator("key", "add-file", "acme", "openai", "-", env=cli_env, stdin=SECRETS[3] + "\n")
    assert more.returncode == 0, more.stderr
    assert "the keys came from stdin: delete whatever file fed it" in more.stderr
    header, row = more.stdout.splitlines()
    assert header.split()[:3] == ["id", "label", "state"] and "active" in row.split()


def test_add_file_refuses_the_whole_file_naming_the_line(cli_env, tmp_path):
    setup(cli_env)
    path = tmp_path / "keys.txt"
    for text, message in (
        (f"{SECRETS[0]}\n# ok so far\n{SECRETS[1]}\tB\tmany\n", "line 3: max_daily_requests: "),
        (f"{SECRETS[0]}\n{SECRETS[1]}\tB\t0\n", "line 2: max_daily_requests: must be between"),
        (f"{SECRETS[0]}\n\n{'x' * 5000}\n", "line 3: secret: at most 4096 characters"),
        (f"{SECRETS[0]},a,1,2\n", "line 1: line: at most 3 fields"),
        # a line without its secret: the label is not taken for one
        (f"{SECRETS[0]}\tPrimary\n\tBackup\t500\n", "line 2: secret: must not be empty"),
        (f"{SECRETS[0]}\n,Backup,500\n", "line 2: secret: must not be empty"),
        ("# nothing but a comment\n\n", "no keys in it"),
    ):
        path.write_text(text)
        r = rotator("key", "add-file", "acme", "openai", str(path), env=cli_env)
        assert r.returncode == 1, text
        assert r.stderr.startswith(f"rotator: {path}: {message}"), r.stderr
        assert r.stderr.count("\n") == 1 and not any(s in r.stderr for s in SECRETS)
    listed = rotator("key", "list", "acme", "openai", "--json", env=cli_env)
    assert json.loads(listed.stdout) == []  # nothing was added, ever
    missing = rotator("key", "add-file", "acme", "openai", str(tmp_path / "nope"), env=cli_env)
    assert missing.returncode == 1 and "No such file" in missing.stderr
    path.write_bytes(b"\xff\xfe sk-binary\n")
    r = rotator("key", "add-file", "acme", "openai", str(path), env=cli_env)
    assert r.returncode == 1 and r.stderr == f"rotator: {path}: not UTF-8 text\n"


async def test_key_move_keeps_the_current_key(cli_env, client, tmp_path):
    tenant = setup(cli_env)
    path = tmp_path / "keys.txt"
    path.write_text("\n".join(SECRETS[:3]))
    added = json.loads(
        rotator("key", "add-file", "acme", "openai", str(path), "--json", env=cli_env).stdout
    )
    a, b, c = [k["id"] for k in added["keys"]]
    moved = rotator("key", "move", "acme", "openai", str(c), "--to", "front", "--json",
                    env=cli_env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    keys_ = json.loads(moved.stdout)
    assert [(k["id"], k["current"]) for k in keys_] == [(c, False), (a, True), (b, False)]
    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
    assert keys_ == (await client.get("/v1/services/openai/keys", headers=auth)).json()
    table = rotator("key", "move", "acme", "openai", str(a), "--to", "end", env=cli_env)
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == [str(c), str(b), str(a)]
    bad = rotator("key", "move", "acme", "openai", str(a), "--to", "middle", env=cli_env)
    assert bad.returncode == 1 and "invalid choice" in bad.stderr
    gone = rotator("key", "move", "acme", "openai", "999", "--to", "end", env=cli_env)
    assert gone.returncode == 1 and "key not found" in gone.stderr


def test_disabling_the_current_key_moves_it_on(cli_env, tmp_path):
    setup(cli_env)
    path = tmp_path / "keys.txt"
    path.write_text("\n".join(SECRETS[:2]))
    rotator("key", "add-file", "acme", "openai", str(path), env=cli_env)
    listed = json.loads(rotator("key", "list", "acme", "openai", "--json", env=cli_env).stdout)
    first, second = listed[0]["id"], listed[1]["id"]
    off = json.loads(rotator("key", "disable", "acme", "openai", str(first), "--json",
                             env=cli_env).stdout)  # fmt: skip
    assert (off["state"], off["current"]) == ("disabled", False)
    listed = json.loads(rotator("key", "list", "acme", "openai", "--json", env=cli_env).stdout)
    assert [k["id"] for k in listed if k["current"]] == [second]


def test_limit_warning_percent_flags(cli_env):
    rotator("tenant", "create", "acme", env=cli_env)
    made = rotator("service", "create", "acme", "openai", "--policy", "usage", "--max-daily",
                   "100", "--json", env=cli_env)  # fmt: skip
    assert json.loads(made.stdout)["limit_warning_percent"] == 80
    made = rotator("service", "create", "acme", "quiet", "--policy", "usage", "--warn-percent",
                   "none", "--json", env=cli_env)  # fmt: skip
    assert json.loads(made.stdout)["limit_warning_percent"] is None
    for value, expected in (("50", 50), ("0", None), ("none", None)):
        done = rotator("service", "update", "acme", "openai", "--warn-percent", value, "--json",
                       env=cli_env)  # fmt: skip
        assert json.loads(done.stdout)["limit_warning_percent"] == expected
    bad = rotator("service", "update", "acme", "openai", "--warn-percent", "100", env=cli_env)
    assert bad.returncode == 1
    assert bad.stderr.startswith("rotator: --warn-percent: must be between 1 and 99")
    shown = rotator("service", "show", "acme", "openai", env=cli_env)
    assert "limit_warning_percent: -" in shown.stdout and "keys_run_out_at: -" in shown.stdout


async def test_key_list_shows_health_and_enable_clears_a_reports_disabling(cli_env, client):
    tenant = setup(cli_env, policy="usage")
    done = rotator("key", "add", "acme", "openai", "--label", "Revoked", env=cli_env,
                   stdin=SECRETS[0])  # fmt: skip
    assert done.returncode == 0, done.stderr
    key_id = json.loads(rotator("key", "list", "acme", "openai", "--json", env=cli_env).stdout)[0][
        "id"
    ]
    r = await client.post(
        "/v1/report",
        json={"service": "openai", "key_id": key_id, "status": 401, "error": "invalid_api_key"},
        params={"token": tenant["client_token"]},
    )
    assert r.status_code == 202
    table = rotator("key", "list", "acme", "openai", env=cli_env).stdout
    assert "disabled (provider answered 401: invalid_api_key)" in table
    assert "401 invalid_api_key at 2026-03-01T12:00:00.000Z" in table  # the last report
    done = rotator("key", "enable", "acme", "openai", str(key_id), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    enabled = json.loads(done.stdout)
    assert (enabled["state"], enabled["disabled_reason"]) == ("active", None)
