"""`rotator import TENANT FILE`: an export (CSV or JSON) of services and keys, all or nothing,
run as a real subprocess on a single node and on a cluster; the undo of a write that fails
midway is driven through the store function with a store that fails on cue."""

from __future__ import annotations

import json

import pytest

from rotator.domain.errors import ImportIncomplete, StoreUnavailable
from rotator.domain.import_file import parse
from rotator.store import imports, services
from rotator.store.connection import Durability
from tests.integration.cli_support import base_env, rotator

SECRETS = [f"sk-proj-import-{i}-abcdefghijklmnopqrstuvwx" for i in range(6)]


@pytest.fixture
def cli_env(settings, master_key_b64, tmp_path, redis) -> dict[str, str]:
    """The backend's store (flushed by the `redis` fixture) for the CLI subprocess."""
    env = base_env(
        ROTATOR_REDIS_URL=settings.redis_url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
    )
    if settings.redis_cluster:
        env.update(ROTATOR_REDIS_CLUSTER="1", ROTATOR_QUEUE_URL=settings.queue_url or "")
    return env


def tenant_with_service(cli_env, policy: str = "manual") -> dict:
    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    done = rotator("service", "create", "acme", "stripe", "--policy", policy, env=cli_env)
    assert done.returncode == 0, done.stderr
    return tenant


def deliver(client, tenant: dict, service: str):
    return client.get("/v1/next", params={"service": service, "token": tenant["client_token"]})


@pytest.mark.backends("single", "cluster")
async def test_csv_import_creates_services_and_fills_existing_ones(cli_env, client, tmp_path):
    tenant = tenant_with_service(cli_env)
    path = tmp_path / "export.csv"
    path.write_text(
        "slug,policy,limit,label,secret\n"
        f"openai,usage,10000,Primary,{SECRETS[0]}\n"
        f"openai,,,Backup,{SECRETS[1]}\n"
        "\n"
        f'stripe,manual,,"Live, EU",{SECRETS[2]}\n'
        f"anthropic,time,,,{SECRETS[3]}\n"
    )
    # a time service needs its ttl: the row is refused, naming the column, and nothing is done
    refused = rotator("import", "acme", str(path), env=cli_env)
    assert refused.returncode == 1
    assert "row 6: key_ttl_minutes: service anthropic: required for the time policy" in (
        refused.stderr
    )
    listed = json.loads(rotator("service", "list", "acme", "--json", env=cli_env).stdout)
    assert [s["slug"] for s in listed] == ["stripe"]

    path.write_text(
        "slug,policy,limit,label,secret,key_ttl_minutes\n"
        f"openai,usage,10000,Primary,{SECRETS[0]},\n"
        f"openai,,,Backup,{SECRETS[1]},\n"
        f'stripe,manual,,"Live, EU",{SECRETS[2]},\n'
        f"anthropic,time,,,{SECRETS[3]},60\n"
    )
    done = rotator("import", "acme", str(path), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert not any(s in done.stdout + done.stderr for s in SECRETS)  # never echoed
    result = json.loads(done.stdout)
    assert result["keys_added"] == 4
    by_slug = {s["slug"]: s for s in result["services"]}
    assert {s: (v["policy"], v["created"], len(v["key_ids"])) for s, v in by_slug.items()} == {
        "anthropic": ("time", True, 1),
        "openai": ("usage", True, 2),
        "stripe": ("manual", False, 1),
    }
    assert "shred -u" in done.stderr or "rm " in done.stderr
    assert "backups" in done.stderr

    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
    openai = (await client.get("/v1/services/openai", headers=auth)).json()
    assert openai["policy"] == "usage" and openai["max_daily_requests"] == 10000
    assert (await client.get("/v1/services/anthropic", headers=auth)).json()[
        "key_ttl_minutes"
    ] == 60
    keys = (await client.get("/v1/services/openai/keys", headers=auth)).json()
    assert [k["label"] for k in keys] == ["Primary", "Backup"]
    assert [k["id"] for k in keys] == by_slug["openai"]["key_ids"]
    stripe = (await client.get("/v1/services/stripe/keys", headers=auth)).json()
    assert [k["label"] for k in stripe] == ["Live, EU"]
    delivered = {(await deliver(client, tenant, "openai")).json()["key"] for _ in range(4)}
    assert delivered == {SECRETS[0], SECRETS[1]}  # sealed, and opened again by delivery
    assert (await deliver(client, tenant, "stripe")).json()["key"] == SECRETS[2]


@pytest.mark.backends("single", "cluster")
def test_json_import_from_stdin_with_a_table_for_people(cli_env):
    tenant_with_service(cli_env)
    rows = [
        {"slug": "openai", "policy": "manual", "limit": None, "label": "Primary",
         "secret": SECRETS[0]},
        {"slug": "stripe", "secret": SECRETS[1]},
    ]  # fmt: skip
    done = rotator("import", "acme", "-", env=cli_env, stdin=json.dumps(rows))
    assert done.returncode == 0, done.stderr
    header, *lines, total = done.stdout.splitlines()
    assert header.split() == ["slug", "policy", "service", "keys_added"]
    assert [line.split() for line in lines] == [
        ["openai", "manual", "created", "1"],
        ["stripe", "manual", "existed", "1"],
    ]
    assert total == "2 keys imported"
    assert "stdin" in done.stderr and not any(s in done.stdout + done.stderr for s in SECRETS)
    listed = json.loads(rotator("key", "list", "acme", "stripe", "--json", env=cli_env).stdout)
    assert [k["label"] for k in listed] == [f"Key {listed[0]['id']}"]


def test_every_bad_row_is_named_and_nothing_is_imported(cli_env, tmp_path):
    tenant_with_service(cli_env)  # stripe exists, policy manual, no limit
    path = tmp_path / "export.csv"
    rows = [
        "slug,policy,limit,label,secret",
        f"openai,usage,,A,{SECRETS[0]}",  # fine
        f"Bad Slug,usage,,B,{SECRETS[1]}",  # row 3
        f"stripe,usage,,C,{SECRETS[2]}",  # row 4: disagrees with the existing service
        f"openai,manual,,D,{SECRETS[3]}",  # row 5: disagrees with row 2
        f"openai,,lots,E,{SECRETS[4]}",  # row 6: not a number
        f"openai,,,F,{SECRETS[0]}",  # row 7: the same secret as row 2
        "newone,,,G,sk-only-secret-here-abcdefgh",  # row 8: a new service needs a policy
        "openai,,,,",  # row 9: no secret
        f"stripe,,5,H,{SECRETS[5]}",  # row 10: a limit the existing service does not have
    ]
    path.write_text("\n".join(rows) + "\n")
    # first the file's shape (cells that cannot be read), then the rules, each all at once
    shape = rotator("import", "acme", str(path), env=cli_env)
    assert shape.returncode == 1
    assert shape.stderr.splitlines()[1:] == [
        "row 6: limit: must be a whole number, or empty",
        "row 9: secret: required",
    ]
    rows[5] = f"openai,,,E,{SECRETS[4]}"
    rows[8] = "openai,,,I,sk-another-one-1234567890"
    path.write_text("\n".join(rows) + "\n")
    done = rotator("import", "acme", str(path), env=cli_env)
    assert done.returncode == 1
    message = done.stderr
    for expected in (
        "nothing imported: 6 problems",
        "row 3: slug: 1-64 characters",
        "row 4: policy: service stripe exists with policy manual, the row says usage",
        "row 5: policy: service openai is given policy usage by an earlier row",
        "row 7: secret: the same secret as row 2",
        "row 8: policy: required: service newone does not exist yet",
        "row 10: limit: service stripe exists with limit none, the row says 5",
    ):
        assert expected in message, message
    assert not any(s in message for s in SECRETS)
    assert "sk-only-secret" not in message
    services_ = json.loads(rotator("service", "list", "acme", "--json", env=cli_env).stdout)
    assert [s["slug"] for s in services_] == ["stripe"]  # nothing created
    assert json.loads(rotator("key", "list", "acme", "stripe", "--json", env=cli_env).stdout) == []


def test_a_file_of_the_wrong_shape_is_refused_before_the_store(cli_env, tmp_path):
    tenant_with_service(cli_env)
    path = tmp_path / "export"
    for text, expected in (
        ("slug,secret,colour\n", "row 1: colour: unknown column"),
        ("label,policy\n", "row 1: slug: required column missing"),
        ('[{"slug": "a", "secret": "s3cr3t-value", "limt": 3}]', "row 1: limt: unknown field"),
        ('[{"slug": "a", "secret": 12}]', "row 1: secret: must be a string"),
        ("[1, 2", "not JSON"),
        ("", "row 1: header: the file is empty"),
        # no header: the first key is where the header should be, and is never quoted
        ("openai,Primary,s3cr3t-value\n", "row 1: header: must be the header naming"),
        ("s3cr3t-value\n", "row 1: header: must be the header naming"),
        ("slug\tsecret\ts3cr3t-value\n", "row 1: header: must be the header naming"),
        ("slug,secret,s3cr3t-value\n", "row 1: column 3: unknown column"),
        ('[{"slug": "a", "secret": "b", "s3cr3t-value": 1}]', "row 1: the field named other"),
        # digits int() would choke on, or read as no API client could send
        ("slug,secret,limit\na,s3cr3t-value,\u00b2\n", "row 2: limit: must be a whole number"),
        ("slug,secret,limit\na,s3cr3t-value,\u0663\u0660\n", "row 2: limit: must be a whole"),
        ("slug,secret,limit\na,s3cr3t-value," + "9" * 5000 + "\n", "row 2: limit: must be a"),
        ("[" * 50_000 + "]" * 50_000, "file: nested too deeply"),
    ):
        path.write_text(text)
        done = rotator("import", "acme", str(path), env=cli_env)
        assert done.returncode == 1 and expected in done.stderr, (text[:80], done.stderr)
        assert "s3cr3t-value" not in done.stderr and "Traceback" not in done.stderr
    empty = rotator("import", "acme", "-", env=cli_env, stdin="slug,secret\n\n")
    assert empty.returncode == 1 and "rows: must hold 1 to" in empty.stderr


class FailingDurability(Durability):
    """Fails the `fail_at`-th write (counting from 1) as an outage would, then recovers."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.writes = 0
        self.fail_at = fail_at

    async def execute(self, pipe):
        self.writes += 1
        if self.writes == self.fail_at:
            raise StoreUnavailable()
        return await super().execute(pipe)


@pytest.mark.backends("single", "cluster")
@pytest.mark.parametrize("fail_at", [2, 3, 4])
async def test_a_write_failing_midway_is_undone(redis, settings, clock, fail_at):
    from rotator.store import tenants

    created = await tenants.create_tenant(
        redis, Durability(), name="acme", demo=False, now_ms=clock.now_ms
    )
    tenant = created.id
    await services.create_service(
        redis, Durability(), tenant, slug="stripe", policy="manual", now_ms=clock.now_ms
    )
    rows = parse(
        "slug,policy,label,secret\n"
        f"openai,usage,A,{SECRETS[0]}\n"
        f"stripe,,B,{SECRETS[1]}\n"
        f"mistral,usage,C,{SECRETS[2]}\n"
    )
    # writes: create openai, add to openai, create mistral, add to mistral, add to stripe
    with pytest.raises(StoreUnavailable):
        await imports.import_keys(
            redis, FailingDurability(fail_at), settings.keyring, tenant, rows,
            now_ms=clock.now_ms, events_maxlen=100, retention_days=1,
        )  # fmt: skip
    listed = await services.list_services(redis, tenant)
    assert [(s.slug, s.keys) for s in listed] == [("stripe", 0)]


async def test_an_undo_that_fails_too_says_what_remains(redis, settings, clock):
    from rotator.store import tenants

    tenant = (
        await tenants.create_tenant(redis, Durability(), name="acme", demo=False, now_ms=1)
    ).id
    rows = parse(f"slug,policy,secret\nopenai,usage,{SECRETS[0]}\nmistral,usage,{SECRETS[1]}\n")

    class Down(FailingDurability):
        async def execute(self, pipe):
            self.writes += 1
            if self.writes >= self.fail_at:  # the store stays away: the undo fails too
                raise StoreUnavailable()
            return await Durability.execute(self, pipe)

    with pytest.raises(ImportIncomplete) as failed:
        await imports.import_keys(
            redis, Down(3), settings.keyring, tenant, rows,
            now_ms=clock.now_ms, events_maxlen=100, retention_days=1,
        )  # fmt: skip
    assert "service openai (created by the import)" in failed.value.message
    assert isinstance(failed.value.__cause__, StoreUnavailable)


async def test_a_key_added_while_importing_is_named_by_its_row(redis, settings, clock):
    """An add landing between the import's check and its write is refused by the write (the
    service never holds a key twice); the refusal names the file's row, not a list index."""
    from rotator.domain.errors import InvalidRows, RowProblem
    from rotator.store import tenants
    from rotator.store.services import already_held

    tenant = (
        await tenants.create_tenant(redis, Durability(), name="acme", demo=False, now_ms=1)
    ).id
    await services.create_service(redis, Durability(), tenant, slug="stripe", policy="manual",
                                  now_ms=1)  # fmt: skip
    rows = parse("slug,secret\n" + "".join(f"stripe,{secret}\n" for secret in SECRETS[:3]))

    class Racing(Durability):
        async def execute(self, pipe):
            if not getattr(self, "raced", False):
                self.raced = True  # another admin adds the file's third key first
                await services.add_key(redis, Durability(), settings.keyring, tenant, "stripe",
                                       label="k", secret=SECRETS[2], now_ms=1)  # fmt: skip
            return await super().execute(pipe)

    with pytest.raises(InvalidRows) as refused:
        await imports.import_keys(
            redis, Racing(), settings.keyring, tenant, rows,
            now_ms=clock.now_ms, events_maxlen=100, retention_days=1,
        )  # fmt: skip
    (held,) = await services.list_keys(redis, tenant, "stripe", now_ms=1)  # nothing imported
    assert refused.value.problems == [
        RowProblem(row=4, field="secret", problem=f"service stripe: {already_held(held.id)}")
    ]


@pytest.mark.backends("single", "cluster")
async def test_the_api_imports_and_answers_as_the_cli(cli_env, client):
    tenant = tenant_with_service(cli_env)
    auth = {"Authorization": f"Bearer {tenant['admin_token']}"}
    rows = [
        {"slug": "openai", "policy": "usage", "limit": 100, "label": "P", "secret": SECRETS[0]},
        {"slug": "stripe", "secret": SECRETS[1]},
    ]
    refused = await client.post(
        "/v1/import", json={"rows": [*rows, {"slug": "stripe", "policy": "time",
                                             "secret": SECRETS[2]}]}, headers=auth,
    )  # fmt: skip
    assert refused.status_code == 400
    body = refused.json()
    assert body["field"] == "rows" and body["rows"] == [
        {"row": 3, "field": "policy",
         "problem": "service stripe exists with policy manual, the row says time: an import "
                    "never changes a service (leave the cell empty, or change the service "
                    "first)"},
    ]  # fmt: skip
    assert not any(s in refused.text for s in SECRETS)
    # a value of the wrong type is named the same way, its row counted from 1 too
    for bad, field, problem in (
        ({"slug": "x", "secret": SECRETS[2], "limit": "5"}, "limit", "Expected `int | null`"),
        ({"secret": SECRETS[2]}, "slug", "Object missing required field `slug`"),
    ):
        typed = await client.post("/v1/import", json={"rows": [rows[0], bad]}, headers=auth)
        assert typed.status_code == 400
        body = typed.json()
        assert (body["field"], len(body["rows"])) == ("rows", 1), body
        assert body["rows"][0]["row"] == 2 and body["rows"][0]["field"] == field, body
        assert body["rows"][0]["problem"].startswith(problem), body
        assert body["error"].startswith("nothing imported: 1 problem\nrow 2: "), body
    assert [s["slug"] for s in (await client.get("/v1/services", headers=auth)).json()] == [
        "stripe"
    ]
    done = await client.post("/v1/import", json={"rows": rows}, headers=auth)
    assert done.status_code == 201, done.text
    answer = done.json()
    assert answer["keys_added"] == 2 and not any(s in done.text for s in SECRETS)
    # the CLI's --json is this record: import the rows with new keys through it
    fresh = [{**row, "secret": secret} for row, secret in zip(rows, SECRETS[2:], strict=False)]
    again = rotator("import", "acme", "-", "--json", env=cli_env, stdin=json.dumps(fresh))
    assert again.returncode == 0, again.stderr
    cli = json.loads(again.stdout)
    assert set(cli) == set(answer) == {"services", "keys_added"}
    assert [(s["slug"], s["created"]) for s in cli["services"]] == [
        ("openai", False), ("stripe", False)
    ]  # fmt: skip
    assert (await client.post("/v1/import", json={"rows": rows})).status_code == 401


@pytest.mark.backends("single", "cluster")
async def test_importing_twice_adds_nothing_the_second_time(cli_env, client, tmp_path):
    """A service never holds one key twice: a rerun import names every row it already holds."""
    tenant = tenant_with_service(cli_env)
    path = tmp_path / "export.csv"
    path.write_text(
        "slug,policy,limit,label,secret\n"
        f"openai,usage,,A,{SECRETS[0]}\n"
        f"stripe,,,B,{SECRETS[1]}\n"
        f"stripe,,,C,{SECRETS[0]}\n"  # the same key in another service is another entry
    )
    first = rotator("import", "acme", str(path), env=cli_env)
    assert first.returncode == 0, first.stderr
    again = rotator("import", "acme", str(path), env=cli_env)
    assert again.returncode == 1
    assert again.stderr.splitlines()[1:] == [
        "row 2: secret: service openai: already in this service (key 1)",
        "row 3: secret: service stripe: already in this service (key 2)",
        "row 4: secret: service stripe: already in this service (key 3)",
    ], again.stderr
    assert not any(s in again.stderr for s in SECRETS)
    for slug, count in (("openai", 1), ("stripe", 2)):
        listed = rotator("key", "list", "acme", slug, "--json", env=cli_env)
        assert len(json.loads(listed.stdout)) == count
    assert (await deliver(client, tenant, "openai")).json()["key"] == SECRETS[0]
