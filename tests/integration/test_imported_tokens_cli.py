"""Imported tokens with the `rotator` command (a subprocess): `--token-file FILE|-` on
`tenant create`, `tenant client-token`, `app create` and `app token`; the same rules as the
API (one store function each)."""

from __future__ import annotations

import json

import pytest

from rotator.tuning import IMPORTED_CACHE_TTL_MS
from tests.integration.cli_support import rotator
from tests.integration.management import Tenant as ApiTenant
from tests.integration.management import deliver, new_key, new_service

HOSTED = "52yseGC525k55YpyHUeAdoYrb77WYJ037sPHhQ"
OTHER = "Zq-9_hosted-app-token-0123456789"


def ok(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(result, message: str) -> None:
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert HOSTED not in result.stderr + result.stdout


async def test_every_command_imports_a_token_from_a_file_or_stdin(cli_env, client, clock, tmp_path):
    token_file = tmp_path / "client-token"
    token_file.write_text(HOSTED + "\n")  # the final newline is not part of it
    created = ok(rotator("tenant", "create", "acme", "--token-file", str(token_file), "--json",
                         env=cli_env))  # fmt: skip
    assert created["client_token"] == HOSTED
    t = ApiTenant(created["id"], created["admin_token"], HOSTED)
    await new_service(client, t)
    await new_key(client, t)
    assert (await deliver(client, HOSTED)).status_code == 200

    # reissue without a value: one of ours; with one from stdin: that one
    ours = ok(rotator("tenant", "client-token", "acme", "--json", env=cli_env))["client_token"]
    assert ours.startswith("krc_") and (await deliver(client, HOSTED)).status_code == 403
    again = rotator("tenant", "client-token", "acme", "--token-file", "-", "--json",
                    env=cli_env, stdin=OTHER)  # fmt: skip
    assert ok(again) == {"client_token": OTHER}
    assert (await deliver(client, OTHER)).status_code == 200

    app = ok(rotator("app", "create", "acme", "web", "--token-file", "-", "--json",
                     env=cli_env, stdin=HOSTED))  # fmt: skip
    assert app["app_token"] == HOSTED
    clock.advance(ms=IMPORTED_CACHE_TTL_MS)  # the API cached it as the tenant's client token
    r = await client.get("/v1/next", params={"service": "openai", "app_token": HOSTED})
    assert r.status_code == 200
    reissued = ok(rotator("app", "token", "acme", str(app["id"]), "--json", env=cli_env))
    assert reissued["app_token"].startswith("kra_")
    r = await client.get("/v1/next", params={"service": "openai", "app_token": HOSTED})
    assert r.status_code == 403
    back = rotator("app", "token", "acme", str(app["id"]), "--token-file", "-", "--json",
                   env=cli_env, stdin=HOSTED)  # fmt: skip
    assert ok(back) == {"app_token": HOSTED}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * 19, "--token-file: must be 20 to 200 characters"),
        ("y" * 201, "--token-file: must be 20 to 200 characters"),
        ("not url safe but long enough", "--token-file: may hold only the URL-safe"),
        ("krc_0123456789abcdef_" + "s" * 20, "--token-file: has the form of a token"),
    ],
)
def test_bad_values_name_the_option(cli_env, value, message):
    refused(rotator("tenant", "create", "a", "--token-file", "-", env=cli_env, stdin=value),
            message)  # fmt: skip
    ok(rotator("tenant", "create", "acme", "--json", env=cli_env))
    for command in (("tenant", "client-token", "acme"), ("app", "create", "acme", "web")):
        refused(rotator(*command, "--token-file", "-", env=cli_env, stdin=value), message)


def test_a_token_in_use_is_refused(cli_env):
    ok(rotator("tenant", "create", "first", "--json", "--token-file", "-", env=cli_env,
               stdin=HOSTED))  # fmt: skip
    ok(rotator("tenant", "create", "second", "--json", env=cli_env))
    for command in (
        ("tenant", "create", "third"),
        ("tenant", "client-token", "second"),
        ("app", "create", "second", "web"),
    ):
        refused(
            rotator(*command, "--token-file", "-", env=cli_env, stdin=HOSTED),
            "rotator: --token-file: this value is already in use by another tenant or app",
        )


def test_an_unreadable_file_is_named(cli_env, tmp_path):
    missing = tmp_path / "nope"
    result = rotator("tenant", "create", "a", "--token-file", str(missing), env=cli_env)
    assert result.returncode != 0 and str(missing) in result.stderr
