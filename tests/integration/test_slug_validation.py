"""Slugs are validated by a whole-string match, through the API, the store and the CLI.

`re.match` with a `$` anchor accepted "openai\\n" (`$` also matches before a final newline);
such a slug reached key names and the key.delivered JSON, where it broke the event.
"""

from __future__ import annotations

import json

import pytest

from rotator.domain.errors import InvalidField
from rotator.store import keys, services
from rotator.store.connection import Durability
from tests.conftest import T0_MS
from tests.integration.cli_support import base_env, rotator
from tests.integration.management import new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

BAD_SLUGS = [
    "openai\n",
    "openai\r\n",
    "open\nai",
    "\nopenai",
    "a\tb",
    "a\x00b",
    "a\x7f",
    "caf\u00e9",
    "\uff4f\uff50\uff45\uff4e\uff41\uff49",  # fullwidth "openai"
    "openai\u2028",
    "openai ",
]


@pytest.mark.parametrize("slug", BAD_SLUGS)
async def test_the_api_refuses_a_slug_that_is_not_whole(client, redis, slug):
    t = await new_tenant(client)
    r = await client.post("/v1/services", json={"slug": slug, "policy": "usage"}, headers=t.auth)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "slug"
    assert (await client.get("/v1/services", headers=t.auth)).json() == []
    assert await redis.exists(keys.service(t.id, slug)) == 0


@pytest.mark.parametrize("slug", BAD_SLUGS)
async def test_the_store_refuses_it_whoever_calls(redis, slug):
    with pytest.raises(InvalidField) as caught:
        await services.create_service(
            redis, Durability(), "0123456789abcdef", slug=slug, policy="usage", now_ms=T0_MS
        )
    assert caught.value.field == "slug"


@pytest.mark.backends("single")
async def test_the_cli_refuses_a_trailing_newline(valkey, master_key_b64, tmp_path, redis):
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
    )
    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=env).stdout)["id"]
    bad = rotator("service", "create", tenant, "openai\n", "--policy", "usage", env=env)
    assert bad.returncode == 1 and bad.stderr.startswith("rotator: SLUG: "), bad.stderr
    assert await redis.smembers(keys.services(tenant)) == set()
