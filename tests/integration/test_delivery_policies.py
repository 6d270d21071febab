"""The round_robin, weighted and least_recently_used policies as a client sees them: the exact
sequence of keys GET /v1/next hands out, how each skips keys it may not deliver (disabled,
expired, at a daily limit), and what management changes and policy switches do to it."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.integration.management import deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


async def sequence(client, t, times: int, slug: str = "openai") -> list[str]:
    """The labels of `times` deliveries in a row ('429'/'503' for a refusal)."""
    labels = []
    for _ in range(times):
        r = await deliver(client, t.client_token, slug)
        labels.append(r.json()["key_label"] if r.status_code == 200 else str(r.status_code))
    return labels


async def keyed(client, t, labels: str, slug: str = "openai", **extra) -> dict[str, int]:
    """One key per letter of `labels`, in id order: label -> key id."""
    return {x: (await new_key(client, t, slug, label=x, **extra))["id"] for x in labels}


async def patch_key(client, t, key_id: int, slug: str = "openai", **fields) -> dict:
    r = await client.patch(f"/v1/services/{slug}/keys/{key_id}", json=fields, headers=t.auth)
    assert r.status_code == 200, r.text
    return r.json()


# --- round_robin ------------------------------------------------------------------------------
async def test_round_robin_deals_keys_in_id_order(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="round_robin")
    await keyed(client, t, "abc")
    assert await sequence(client, t, 7) == list("abcabca")


async def test_round_robin_skips_disabled_limited_and_follows_its_place(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="round_robin")
    ids = await keyed(client, t, "abcd")
    await patch_key(client, t, ids["b"], active=False)
    await patch_key(client, t, ids["d"], max_daily_requests=1)
    assert await sequence(client, t, 6) == list("acdaca")  # d is at its daily limit after one
    await patch_key(client, t, ids["b"], active=True)
    assert await sequence(client, t, 3) == list("bca")  # from its place (after a), not anew


async def test_round_robin_goes_on_after_the_last_key_is_deleted(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="round_robin")
    ids = await keyed(client, t, "abc")
    assert await sequence(client, t, 2) == list("ab")
    r = await client.delete(f"/v1/services/openai/keys/{ids['b']}", headers=t.auth)
    assert r.status_code == 204
    assert await sequence(client, t, 3) == list("cac")


async def test_round_robin_is_exact_under_concurrency(client):
    """60 requests at once over 3 keys: each key exactly 20 times (the script is atomic)."""
    t = await new_tenant(client)
    await new_service(client, t, policy="round_robin")
    await keyed(client, t, "abc")
    answers = await asyncio.gather(*(deliver(client, t.client_token) for _ in range(60)))
    assert Counter(r.json()["key_label"] for r in answers) == {"a": 20, "b": 20, "c": 20}


# --- weighted ---------------------------------------------------------------------------------
async def test_weighted_is_nginx_smooth_weighted_round_robin(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="weighted")
    await new_key(client, t, label="a", weight=5)
    await keyed(client, t, "bc")  # weight 1, the default
    assert await sequence(client, t, 14) == list("aabacaa") * 2


async def test_weighted_shares_over_a_cycle_and_skips_unavailable_keys(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="weighted")
    a = await new_key(client, t, label="a", weight=3)
    b = await new_key(client, t, label="b", weight=2, max_daily_requests=2)
    assert a["weight"] == 3 and b["weight"] == 2
    assert await sequence(client, t, 5) == list("ababa")  # 3:2 over one cycle
    # b is at its daily limit: a alone
    assert await sequence(client, t, 3) == list("aaa")


async def test_a_weight_change_restarts_the_cycle(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="weighted")
    ids = await keyed(client, t, "ab")
    assert await sequence(client, t, 1) == ["a"]
    changed = await patch_key(client, t, ids["b"], weight=3)
    assert changed["weight"] == 3
    # a fresh cycle with weights 1:3, as a new service would deliver it
    assert await sequence(client, t, 8) == list("babbbabb")


async def test_disabling_a_key_restarts_the_cycle_without_it(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="weighted")
    a = await new_key(client, t, label="a", weight=2)
    ids = await keyed(client, t, "bc")
    assert await sequence(client, t, 2) == list("ab")
    await patch_key(client, t, ids["c"], active=False)
    assert await sequence(client, t, 6) == list("abaaba")
    await patch_key(client, t, a["id"], active=False)
    await patch_key(client, t, ids["b"], active=False)
    assert await sequence(client, t, 1) == ["503"]


# --- least_recently_used ----------------------------------------------------------------------
async def test_lru_delivers_the_key_used_longest_ago(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="least_recently_used")
    ids = await keyed(client, t, "abc")
    assert await sequence(client, t, 4) == list("abca")
    await patch_key(client, t, ids["b"], active=False)
    assert await sequence(client, t, 2) == list("ca")  # b skipped; c is now the oldest
    await patch_key(client, t, ids["b"], active=True)
    assert await sequence(client, t, 3) == list("bca")  # b was delivered longest ago
    await new_key(client, t, label="d")
    assert await sequence(client, t, 2) == list("db")  # never delivered first


async def test_lru_orders_deliveries_in_the_same_millisecond(client):
    """The injected clock stands still: the order still holds (a sequence, not a time)."""
    t = await new_tenant(client)
    await new_service(client, t, policy="least_recently_used")
    await keyed(client, t, "ab", max_daily_requests=3)
    assert await sequence(client, t, 7) == [*"ababab", "429"]


# --- every policy -----------------------------------------------------------------------------
NEW_POLICIES = ("round_robin", "weighted", "least_recently_used")


@pytest.mark.parametrize("policy", NEW_POLICIES)
async def test_every_key_at_its_daily_limit_is_429_key(client, policy):
    t = await new_tenant(client)
    await new_service(client, t, policy=policy)
    await keyed(client, t, "ab", max_daily_requests=1)
    assert sorted(await sequence(client, t, 2)) == ["a", "b"]
    r = await deliver(client, t.client_token)
    assert (r.status_code, r.json()["limit"]) == (429, "key")


@pytest.mark.parametrize("policy", NEW_POLICIES)
async def test_no_active_key_is_503(client, policy):
    t = await new_tenant(client)
    await new_service(client, t, policy=policy)
    ids = await keyed(client, t, "a")
    await patch_key(client, t, ids["a"], active=False)
    assert await sequence(client, t, 1) == ["503"]


@pytest.mark.parametrize(
    ("old", "new"),
    [(o, n) for o in ("manual", "time", "usage", *NEW_POLICIES) for n in NEW_POLICIES if o != n],
)
async def test_switching_policy_starts_the_new_one_afresh(client, old, new):
    """From any policy to a new one, and back: each starts as on a new service (listings say
    no key is current under the new policies)."""
    t = await new_tenant(client)
    extra = {"key_ttl_minutes": 5} if old == "time" else {}
    await new_service(client, t, policy=old, **extra)
    await new_key(client, t, label="a", weight=2)
    await keyed(client, t, "b")
    await sequence(client, t, 3)
    r = await client.patch("/v1/services/openai", json={"policy": new}, headers=t.auth)
    assert r.status_code == 200 and r.json()["policy"] == new
    # round_robin: id order from the first; weighted 2:1 from a fresh cycle; lru: a and b
    # never delivered under it, a is the lower id
    assert await sequence(client, t, 3) == list("aba")
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert [k["current"] for k in listed] == [False, False]
    back = {"policy": old, **extra}
    r = await client.patch("/v1/services/openai", json=back, headers=t.auth)
    assert r.status_code == 200 and r.json()["policy"] == old
    labels = await sequence(client, t, 2)
    assert set(labels) <= {"a", "b"}


async def test_keys_never_expire_under_the_new_policies(client, clock):
    """Keys never expire under the new policies (lifetimes belong to the time policy), and a
    switch back to time starts every lifetime afresh."""
    t = await new_tenant(client)
    await new_service(client, t, policy="time", key_ttl_minutes=1)
    await keyed(client, t, "ab")
    assert await sequence(client, t, 1) == ["a"]
    clock.now_ms += 61_000
    assert await sequence(client, t, 1) == ["b"]  # a expired
    r = await client.patch("/v1/services/openai", json={"policy": "round_robin"}, headers=t.auth)
    assert r.status_code == 200
    assert await sequence(client, t, 2) == list("ab")
