"""The CLI's writes are audited as the operator's by the OS user, and `rotator audit` reads
every tenant's log with the API's filters."""

from __future__ import annotations

import getpass
import json

import pytest

from tests.integration.audit_support import raw_records
from tests.integration.cli_support import rotator
from tests.integration.management import OPERATOR

pytestmark = pytest.mark.backends("single")  # cli_env is the single server


def run(env: dict[str, str], *args: str, stdin: str | None = None):
    done = rotator(*args, env=env, stdin=stdin)
    return done


async def test_cli_writes_and_refusals_are_recorded_as_the_operators(cli_env, redis, client):
    created = run(cli_env, "tenant", "create", "clico", "--json")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)["id"]
    assert run(cli_env, "service", "create", tenant, "openai", "--policy", "usage").returncode == 0
    added = run(
        cli_env,
        "key",
        "add",
        tenant,
        "openai",
        "--label",
        "k",
        stdin="sk-cli-0123456789abcdefghijklmnop\n",
    )
    assert added.returncode == 0, added.stderr
    refused = run(cli_env, "service", "delete", tenant, "missing")
    assert refused.returncode == 1

    records = await raw_records(redis, tenant)
    assert [(x["action"], x["outcome"]) for x in records] == [
        ("create_tenant", "ok"),
        ("create_service", "ok"),
        ("add_key", "ok"),
        ("delete_service", "refused"),
    ]
    for x in records:
        assert (x["role"], x["via"], x["address"]) == ("operator", "cli", "cli")
        assert x["credential"] == "cli:" + getpass.getuser()
        assert x["request_id"]
    assert "sk-cli-0123456789" not in json.dumps(records)
    assert records[2]["fields"]["secret"] == "[redacted]"

    # `rotator audit` is the operator's view: every tenant's, narrowed as the API narrows
    shown = run(cli_env, "audit", "--action", "add_key", "--json")
    assert shown.returncode == 0, shown.stderr
    api = await client.get("/v1/audit", params={"action": "add_key"}, headers=OPERATOR)
    assert shown.stdout.strip() == api.text
    table = run(cli_env, "audit", "--tenant", "clico", "--limit", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["at", "tenant", "role"]
    assert "delete_service" in lines[1] and "refused" in lines[1]
    assert "--cursor" in lines[-1]


async def test_cli_audit_refuses_a_bad_time_or_cursor(cli_env):
    done = run(cli_env, "audit", "--since", "yesterday")
    assert done.returncode == 1 and "--since" in done.stderr
    done = run(cli_env, "audit", "--cursor", "nope")
    assert done.returncode == 1 and "--cursor" in done.stderr


async def test_cli_log_lines_are_json_with_the_commands_request_id(cli_env, redis):
    env = {**cli_env, "ROTATOR_LOG_FORMAT": "json", "ROTATOR_LOG_LEVEL": "DEBUG"}
    created = run(env, "tenant", "create", "logged", "--json")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)["id"]
    done = run(env, "service", "create", tenant, "openai", "--policy", "usage")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines, "no log line at DEBUG"
    record = (await raw_records(redis, tenant))[-1]
    caused = [x for x in lines if x.get("request_id") == record["request_id"]]
    # the lines from the tenant's resolution on name it (the store's connection lines before)
    assert {x.get("tenant") for x in caused} - {None} == {tenant}, lines
    assert json.loads(created.stdout)["admin_token"] not in created.stderr
