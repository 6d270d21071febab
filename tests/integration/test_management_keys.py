"""/v1/services/{slug}/keys: add, list, change, delete. The secret never comes back."""

from __future__ import annotations

import asyncio

import pytest

from rotator.crypto import aad_for_key
from rotator.domain.masking import mask
from rotator.store import keys
from tests.integration.management import SECRET, deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("sk-proj-abcdefghijklmnopqrstuvwxyz1234", "sk-proj-"),
        ("sk-ant-api03-abcdefghijklmnopqrstuv1234", "sk-ant-"),
        ("gsk_abcdefghijklmnopqrstuvwxyz1234", "gsk_"),
        # a key whose first characters merely look like a prefix reveals none of them
        ("qz_kx-9f8G7h6J5k4L3m2N1p0", ""),
        ("horse_staple-battery-correct-1234", ""),
    ],
)
async def test_a_masked_key_shows_a_providers_prefix_and_its_last_four_only(client, secret, shown):
    t = await new_tenant(client)
    await new_service(client, t)
    added = await new_key(client, t, secret=secret)
    expected = shown + "•" * (len(secret) - len(shown) - 4) + secret[-4:]
    assert added["key_masked"] == expected
    r = await client.get(
        "/v1/next", params={"service": "openai", "token": t.client_token, "mask": "1"}
    )
    assert (r.json()["masked"], r.json()["key"]) == (True, expected)


async def test_a_service_never_holds_one_key_twice(client):
    """A copy would be handed out right after its twin was rate limited: each way of adding
    a key refuses one the service holds, naming it; another service may hold it too."""
    t = await new_tenant(client)
    await new_service(client, t)
    await new_service(client, t, slug="backup")
    first = await new_key(client, t, secret=SECRET)
    again = await client.post(
        "/v1/services/openai/keys", json={"label": "Again", "secret": SECRET}, headers=t.auth
    )
    assert again.status_code == 400
    assert again.json() == {
        "error": f"secret: already in this service (key {first['id']})",
        "field": "secret",
    }
    # a key masked alike is compared by its secret: only the same secret is refused
    twin = SECRET[:-8] + "zzzz" + SECRET[-4:]
    assert (await new_key(client, t, secret=twin))["key_masked"] == first["key_masked"]
    bulk = await client.post(
        "/v1/services/openai/keys/bulk",
        json={"keys": [{"secret": "sk-proj-brand-new-0123456789abcdef"}, {"secret": SECRET}]},
        headers=t.auth,
    )
    assert bulk.status_code == 400
    assert bulk.json()["index"] == 1 and bulk.json()["field"] == "secret"
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert len(listed) == 2  # the bulk add was all or nothing
    assert (await new_key(client, t, slug="backup", secret=SECRET))["id"] != first["id"]
    assert SECRET not in again.text + bulk.text


async def test_a_key_masked_by_an_earlier_version_is_still_found(client, redis):
    """Earlier versions showed other prefixes (`sk-` where `sk-or-v1-` is known now): the
    keys compared are those whose masked form ends with the secret's last characters, which
    every version shows alike."""
    t = await new_tenant(client)
    await new_service(client, t)
    secret = "sk-or-v1-" + "0123456789abcdef" * 4
    first = await new_key(client, t, secret=secret)
    earlier = "sk-" + "•" * (len(secret) - 7) + secret[-4:]
    await redis.hset(keys.service(t.id, "openai"), f"k:{first['id']}", earlier)
    for add in (
        client.post("/v1/services/openai/keys", json={"label": "a", "secret": secret},
                    headers=t.auth),
        client.post("/v1/services/openai/keys/bulk", json={"keys": [{"secret": secret}]},
                    headers=t.auth),
    ):  # fmt: skip
        r = await add
        assert r.status_code == 400
        assert r.json()["error"].endswith(f"secret: already in this service (key {first['id']})")


async def test_concurrent_adds_of_one_key_store_it_once(client):
    t = await new_tenant(client)
    await new_service(client, t)
    answers = await asyncio.gather(
        *(
            client.post(
                "/v1/services/openai/keys", json={"label": f"k{i}", "secret": SECRET},
                headers=t.auth,
            )
            for i in range(8)
        )
    )  # fmt: skip
    assert sorted(r.status_code for r in answers) == [201] + [400] * 7
    assert len((await client.get("/v1/services/openai/keys", headers=t.auth)).json()) == 1


async def test_add_and_list_keys(client, redis, settings):
    t = await new_tenant(client)
    await new_service(client, t)
    r = await client.post(
        "/v1/services/openai/keys",
        json={"label": "Primary", "secret": SECRET, "max_daily_requests": 50},
        headers=t.auth,
    )
    assert r.status_code == 201
    added = r.json()
    assert added == {
        "id": added["id"],
        "label": "Primary",
        "active": True,
        "state": "active",
        "max_daily_requests": 50,
        "max_requests_per_minute": None,
        "weight": 1,
        "key_masked": mask(SECRET),
        "created_at": "2026-03-01T12:00:00.000Z",
        "current": False,
        "expires_at": None,
        "cooldown_until": None,
        "disabled_reason": None,
        "failures": 0,
        "last_report": None,
    }
    assert isinstance(added["id"], int)
    second = await new_key(client, t, secret="sk-another-secret-value-1234", label="Backup")
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert [k["id"] for k in listed] == [added["id"], second["id"]]  # rotation order
    assert SECRET not in str(listed) and "sk-another-secret-value-1234" not in str(listed)
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert (service["keys"], service["active_keys"]) == (2, 2)

    # stored sealed, bound to tenant, service and id
    blob = await redis.hget(keys.service(t.id, "openai"), f"c:{added['id']}")
    assert SECRET.encode() not in blob
    aad = aad_for_key(t.id, "openai", added["id"])
    assert settings.keyring.open(blob, aad) == SECRET.encode()

    # what a client gets is the secret we stored
    body = (await deliver(client, t.client_token)).json()
    assert body["key"] in (SECRET, "sk-another-secret-value-1234")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret": "sk-x"}, "label"),
        ({"label": "a"}, "secret"),
        ({"label": "", "secret": "sk-x"}, "label"),
        ({"label": "a", "secret": "   "}, "secret"),
        ({"label": "a", "secret": "sk-\nx"}, "secret"),
        ({"label": "a", "secret": "x" * 5000}, "secret"),
        ({"label": "a", "secret": "sk-x", "max_daily_requests": 0}, "max_daily_requests"),
        ({"label": "a", "secret": "sk-x", "active": False}, "active"),
    ],
)
async def test_add_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    await new_service(client, t)
    r = await client.post("/v1/services/openai/keys", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert "sk-" not in r.text  # an error never echoes the secret
    assert (await client.get("/v1/services/openai/keys", headers=t.auth)).json() == []


async def test_add_to_unknown_service_is_404(client):
    t = await new_tenant(client)
    r = await client.post(
        "/v1/services/nope/keys", json={"label": "a", "secret": "sk-x"}, headers=t.auth
    )
    assert r.status_code == 404
    assert (await client.get("/v1/services/nope/keys", headers=t.auth)).status_code == 404


async def test_disable_enable_relabel(client):
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    path = f"/v1/services/openai/keys/{key['id']}"
    r = await client.patch(path, json={"active": False}, headers=t.auth)
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await deliver(client, t.client_token)).json() == {"error": "no active keys"}

    r = await client.patch(
        path, json={"active": True, "label": "Renamed", "max_daily_requests": 7}, headers=t.auth
    )
    body = r.json()
    assert (body["active"], body["label"], body["max_daily_requests"]) == (True, "Renamed", 7)
    delivered = (await deliver(client, t.client_token)).json()
    assert delivered["key_label"] == "Renamed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"active": "no"}, "active"),
        ({"label": ""}, "label"),
        ({"max_daily_requests": 0}, "max_daily_requests"),
        ({"secret": "sk-new"}, "secret"),  # a secret is replaced by adding a new key
    ],
)
async def test_patch_rejects_bad_input(client, redis, body, field):
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    # storage itself: a refused request writes nothing, not even a field no read shows
    before = await redis.hgetall(keys.service(t.id, "openai"))
    r = await client.patch(f"/v1/services/openai/keys/{key['id']}", json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert await redis.hgetall(keys.service(t.id, "openai")) == before


async def test_delete_key(client, redis):
    t = await new_tenant(client)
    await new_service(client, t)
    first = await new_key(client, t, label="first")
    second = await new_key(client, t, label="second", secret="sk-second-secret-abcdefgh")
    r = await client.delete(f"/v1/services/openai/keys/{first['id']}", headers=t.auth)
    assert r.status_code == 204
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert [k["id"] for k in listed] == [second["id"]]
    # storage itself: the deleted key's ciphertext is gone too, not just unlisted
    stored = await redis.hgetall(keys.service(t.id, "openai"))
    assert f"c:{first['id']}".encode() not in stored
    for _ in range(3):
        assert (await deliver(client, t.client_token)).json()["key_label"] == "second"
    again = await client.delete(f"/v1/services/openai/keys/{first['id']}", headers=t.auth)
    assert again.status_code == 404
    r = await client.patch("/v1/services/openai/keys/999", json={"label": "x"}, headers=t.auth)
    assert r.status_code == 404
