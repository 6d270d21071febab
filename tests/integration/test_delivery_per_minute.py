"""Per-minute limits (`max_requests_per_minute`, per key and per service) as a client sees them:
a sliding window, exact to the millisecond with the injected clock: a delivery at t is allowed
while fewer than R deliveries fall in (t - 60 s, t]. A key at its limit is skipped by every
policy; when nothing can be delivered the answer is `429 rate limit reached` with the seconds
until the first slot frees."""

from __future__ import annotations

import pytest

from rotator.domain.clock import FakeClock
from rotator.domain.models import Policy
from tests.integration.management import deliver, new_app, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

RATE = "rate limit reached"


def refused(r, limit: str, retry_after: int) -> bool:
    assert r.status_code == 429, r.text
    assert r.json() == {"error": RATE, "limit": limit, "retry_after": retry_after}
    assert r.headers["retry-after"] == str(retry_after)
    return True


async def test_the_61st_request_in_a_minute_is_refused(client, clock: FakeClock):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t, max_requests_per_minute=60)
    for _ in range(60):
        assert (await deliver(client, t.client_token)).status_code == 200
    assert refused(await deliver(client, t.client_token), "key", 60)
    clock.now_ms += 59_999
    assert refused(await deliver(client, t.client_token), "key", 1)  # 1 ms, rounded up
    clock.now_ms += 1
    assert (await deliver(client, t.client_token)).status_code == 200


async def test_the_window_slides(client, clock: FakeClock):
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t, max_requests_per_minute=3)
    t0 = clock.now_ms
    for offset in (0, 10_000, 20_000):
        clock.now_ms = t0 + offset
        assert (await deliver(client, t.client_token)).status_code == 200
    clock.now_ms = t0 + 30_000
    assert refused(await deliver(client, t.client_token), "key", 30)
    clock.now_ms = t0 + 60_000  # the first slid out: one slot
    assert (await deliver(client, t.client_token)).status_code == 200
    clock.now_ms = t0 + 61_000  # 10 s, 20 s and 60 s are in the window; 10 s frees at 70 s
    assert refused(await deliver(client, t.client_token), "key", 9)
    # refusals took no slot: at 70 s exactly one more
    clock.now_ms = t0 + 70_000
    assert (await deliver(client, t.client_token)).status_code == 200
    assert refused(await deliver(client, t.client_token), "key", 10)


@pytest.mark.parametrize("policy", [p.value for p in Policy])
async def test_every_policy_skips_a_key_at_its_per_minute_limit(client, clock, policy):
    t = await new_tenant(client)
    await new_service(client, t, policy=policy,
                      **({"key_ttl_minutes": 60} if policy == "time" else {}))  # fmt: skip
    a = await new_key(client, t, label="a", max_requests_per_minute=2)
    await new_key(client, t, label="b", max_requests_per_minute=2)
    labels = [(await deliver(client, t.client_token)).json()["key_label"] for _ in range(4)]
    assert sorted(labels) == ["a", "a", "b", "b"]
    assert refused(await deliver(client, t.client_token), "key", 60)
    clock.now_ms += 60_000
    r = await deliver(client, t.client_token)
    assert r.status_code == 200
    assert a["max_requests_per_minute"] == 2


async def test_a_manual_primary_at_its_limit_overflows_and_stays_primary(client, clock):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    await new_key(client, t, label="a", max_requests_per_minute=2)
    await new_key(client, t, label="b")
    labels = [(await deliver(client, t.client_token)).json()["key_label"] for _ in range(4)]
    assert labels == ["a", "a", "b", "b"]
    listed = (await client.get("/v1/services/openai/keys", headers=t.auth)).json()
    assert [k["current"] for k in listed] == [True, False]  # a stays the primary
    clock.now_ms += 60_000
    assert (await deliver(client, t.client_token)).json()["key_label"] == "a"


async def test_a_key_at_its_daily_limit_and_one_at_its_minute_limit(client, clock):
    """Some key frees a per-minute slot within the minute: that is the 429, with its wait."""
    t = await new_tenant(client)
    await new_service(client, t)
    await new_key(client, t, label="a", max_daily_requests=1)
    await new_key(client, t, label="b", max_requests_per_minute=1)
    assert (await deliver(client, t.client_token)).status_code == 200
    clock.now_ms += 15_000
    assert (await deliver(client, t.client_token)).status_code == 200
    assert refused(await deliver(client, t.client_token), "key", 60)


async def test_the_service_limit_counts_every_token(client, clock):
    t = await new_tenant(client)
    service = await new_service(client, t, max_requests_per_minute=2)
    assert service["max_requests_per_minute"] == 2
    await new_key(client, t)
    app = await new_app(client, t)
    r = await deliver(client, t.client_token)
    assert r.json()["limits"] == {"max_daily_requests": None, "max_requests_per_minute": 2}
    clock.now_ms += 20_000
    r = await client.get("/v1/next", params={"service": "openai", "app_token": app["app_token"]})
    assert r.status_code == 200
    clock.now_ms += 5_500
    assert refused(await deliver(client, t.client_token), "service", 35)  # 34.5 s, rounded up
    clock.now_ms += 34_500
    assert (await deliver(client, t.client_token)).status_code == 200


async def test_the_service_limit_is_checked_before_the_keys(client, clock):
    t = await new_tenant(client)
    await new_service(client, t, max_requests_per_minute=1)
    await new_key(client, t, max_requests_per_minute=1)
    assert (await deliver(client, t.client_token)).status_code == 200
    assert refused(await deliver(client, t.client_token), "service", 60)


async def test_changing_the_limits(client, clock):
    """A lower limit applies at once to the deliveries already in the window; a higher one
    admits more at once; null removes it (and the 200 no longer names it)."""
    t = await new_tenant(client)
    await new_service(client, t, max_requests_per_minute=3)
    key = await new_key(client, t)
    for _ in range(2):
        assert (await deliver(client, t.client_token)).status_code == 200
    r = await client.patch("/v1/services/openai", json={"max_requests_per_minute": 2},
                           headers=t.auth)  # fmt: skip
    assert r.status_code == 200 and r.json()["max_requests_per_minute"] == 2
    assert refused(await deliver(client, t.client_token), "service", 60)
    await client.patch("/v1/services/openai", json={"max_requests_per_minute": 4}, headers=t.auth)
    assert (await deliver(client, t.client_token)).status_code == 200
    await client.patch("/v1/services/openai", json={"max_requests_per_minute": None},
                       headers=t.auth)  # fmt: skip
    r = await deliver(client, t.client_token)
    assert r.json()["limits"] == {"max_daily_requests": None}
    path = f"/v1/services/openai/keys/{key['id']}"
    r = await client.patch(path, json={"max_requests_per_minute": 1}, headers=t.auth)
    assert r.status_code == 200 and r.json()["max_requests_per_minute"] == 1
    # the key's window counts from when it got a limit
    assert (await deliver(client, t.client_token)).status_code == 200
    assert refused(await deliver(client, t.client_token), "key", 60)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/services", {"slug": "x", "policy": "usage", "max_requests_per_minute": 0},
         "max_requests_per_minute"),
        ("/v1/services", {"slug": "x", "policy": "fastest"}, "policy"),
        ("/v1/services/openai", {"max_requests_per_minute": -1}, "max_requests_per_minute"),
        ("/v1/services/openai", {"policy": "random"}, "policy"),
        ("/v1/services/openai/keys", {"label": "k", "secret": "sk-x", "weight": 0}, "weight"),
        ("/v1/services/openai/keys", {"label": "k", "secret": "sk-x", "weight": -3}, "weight"),
        ("/v1/services/openai/keys", {"label": "k", "secret": "sk-x",
                                      "max_requests_per_minute": 0}, "max_requests_per_minute"),
        ("/v1/services/openai/keys/bulk", {"keys": [{"secret": "sk-x", "weight": 0}]}, "weight"),
        ("KEY", {"weight": 0}, "weight"),
        ("KEY", {"weight": 1001}, "weight"),
        ("KEY", {"max_requests_per_minute": 0}, "max_requests_per_minute"),
    ],
)  # fmt: skip
async def test_invalid_policy_weight_and_rate_are_400_naming_the_field(client, path, body, field):
    t = await new_tenant(client)
    await new_service(client, t)
    key = await new_key(client, t)
    url = f"/v1/services/openai/keys/{key['id']}" if path == "KEY" else path
    send = client.post if path in ("/v1/services", "/v1/services/openai/keys",
                                   "/v1/services/openai/keys/bulk") else client.patch  # fmt: skip
    r = await send(url, json=body, headers=t.auth)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
