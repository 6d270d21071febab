"""The new policies, weights and per-minute limits through `rotator service ...` and
`rotator key ...` as real subprocesses: the same records as the API, and the store's refusals
named by the flag."""

from __future__ import annotations

import json

import pytest

from tests.integration.cli_support import rotator

SECRET = "sk-proj-cli-weighted-abcdefghijklmnop"


def test_weighted_service_and_keys_with_per_minute_limits(cli_env):
    json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    done = rotator("service", "create", "acme", "openai", "--policy", "weighted",
                   "--max-per-minute", "600", "--json", env=cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = json.loads(done.stdout)
    assert (service["policy"], service["max_requests_per_minute"]) == ("weighted", 600)

    done = rotator("key", "add", "acme", "openai", "--label", "Big", "--weight", "5",
                   "--max-per-minute", "60", "--json", env=cli_env, stdin=SECRET)  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)
    assert (key["weight"], key["max_requests_per_minute"]) == (5, 60)
    assert SECRET not in done.stdout

    done = rotator("key", "update", "acme", "openai", str(key["id"]), "--weight", "2",
                   "--max-per-minute", "none", "--json", env=cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["weight"], json.loads(done.stdout)["max_requests_per_minute"]) \
        == (2, None)  # fmt: skip

    listed = rotator("key", "list", "acme", "openai", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    header = listed.stdout.splitlines()[0].split()
    assert "weight" in header and "max_requests_per_minute" in header

    done = rotator("service", "update", "acme", "openai", "--policy", "least_recently_used",
                   "--max-per-minute", "none", "--json", env=cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = json.loads(done.stdout)
    assert (service["policy"], service["max_requests_per_minute"]) == ("least_recently_used", None)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("key", "update", "acme", "openai", "1", "--weight", "0"), "--weight"),
        (("key", "update", "acme", "openai", "1", "--weight", "-2"), "--weight"),
        (("key", "update", "acme", "openai", "1", "--max-per-minute", "0"), "--max-per-minute"),
        (("service", "update", "acme", "openai", "--max-per-minute", "0"), "--max-per-minute"),
        (("service", "create", "acme", "other", "--policy", "usage", "--max-per-minute", "-1"),
         "--max-per-minute"),
    ],
)  # fmt: skip
def test_the_stores_refusals_name_the_flag(cli_env, args, flag):
    rotator("tenant", "create", "acme", env=cli_env)
    rotator("service", "create", "acme", "openai", "--policy", "round_robin", env=cli_env)
    added = rotator("key", "add", "acme", "openai", "--label", "a", env=cli_env, stdin=SECRET)
    assert added.returncode == 0, added.stderr
    done = rotator(*args, env=cli_env)
    assert done.returncode != 0
    assert f"{flag}: must be" in done.stderr


def test_an_unknown_policy_is_refused(cli_env):
    rotator("tenant", "create", "acme", env=cli_env)
    done = rotator("service", "create", "acme", "openai", "--policy", "random", env=cli_env)
    assert done.returncode != 0
    assert "--policy" in done.stderr and "round_robin" in done.stderr
