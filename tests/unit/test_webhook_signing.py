"""Signing, verification and backoff of webhook deliveries (no Redis, no network)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

import pytest

from workers import signing
from workers.config import WorkerConfig
from workers.deliver import backoff_s

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_signature_matches_the_standard_webhooks_definition():
    body = b'{"id":"evt_t_1-0"}'
    expected = base64.b64encode(
        hmac.new(b"k" * 32, b"evt_t_1-0.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert signing.sign(SECRET, "evt_t_1-0", 1_700_000_000, body) == "v1," + expected


def test_verify_accepts_its_own_and_rejects_tampering():
    body = b'{"a":1}'
    headers = signing.headers(SECRET, "evt_t_1-0", 1_700_000_000, body)
    assert signing.verify(SECRET, headers, body, now_s=1_700_000_010)
    assert not signing.verify(SECRET, headers, b'{"a":2}', now_s=1_700_000_010)
    assert not signing.verify(
        SECRET, {**headers, "webhook-id": "evt_t_2-0"}, body, now_s=1_700_000_010
    )
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    assert not signing.verify(other, headers, body, now_s=1_700_000_010)
    # a replay outside the tolerance is refused
    assert not signing.verify(SECRET, headers, body, now_s=1_700_000_000 + 301)
    # several signatures (secret rotation): any valid one is enough
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert signing.verify(SECRET, rotated, body, now_s=1_700_000_000)
    assert not signing.verify(SECRET, {}, body, now_s=1_700_000_000)


@pytest.mark.parametrize("offered", ["v1,é", "v1,\udcff", "v1,\u2603 v1,x"])
def test_verify_refuses_a_signature_that_is_not_ascii(offered):
    body = b"{}"
    headers = {
        **signing.headers(SECRET, "evt_t_1-0", 1_700_000_000, body),
        "webhook-signature": offered,
    }
    assert not signing.verify(SECRET, headers, body, now_s=1_700_000_000)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
def test_bad_secret(secret):
    with pytest.raises(signing.BadSecret):
        signing.sign(secret, "evt", 1, b"")


def test_backoff_is_exponential_capped_and_jittered():
    config = WorkerConfig(backoff_base_s=30, backoff_cap_s=600)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)]:
        delays = [backoff_s(attempt, config, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # spread, not one fixed delay


async def test_target_cache_reads_once_per_ttl(monkeypatch):
    from workers import deliver

    reads: list[str] = []

    async def load_target(data, keyring, tenant):
        reads.append(tenant)
        return None

    monkeypatch.setattr(deliver.webhooks, "load_target", load_target)
    cached = deliver.TargetCache(ttl_s=60)
    for _ in range(3):
        await cached.get(None, None, "t1")
    await cached.get(None, None, "t2")
    assert reads == ["t1", "t2"]
    uncached = deliver.TargetCache(ttl_s=0)
    for _ in range(2):
        await uncached.get(None, None, "t1")
    assert reads == ["t1", "t2", "t1", "t1"]
