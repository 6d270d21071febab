"""Webhook delivery end to end: stream -> pump -> arq job -> real HTTP receiver on loopback.

Every delivery's signature is checked with the test's own implementation of the scheme.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

from rotator.cli.webhook_listen import Receiver
from rotator.store import keys
from rotator.store.events import GROUP
from tests.integration.webhook_support import (
    FAST,
    deliver_all,
    log_of,
    pump,
    record_event,
    verify_signature,
    webhook_tenant,
    worker,
)


def statuses(*codes: int):
    """A responder answering `codes` in turn (the last one from then on)."""
    answers = list(codes)

    def respond(_):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return respond


async def test_every_delivery_is_signed_and_shaped(settings, redis, receiver):
    t, secret = await webhook_tenant(redis, settings.keyring, receiver.url)
    sent = [
        ("key.expired", {"service": "openai", "key_id": 3, "label": "Primary ✓"}),
        ("service.no_active_keys", {"service": "openai"}),
        ("key.delivered", {"service": "openai", "key_id": 4, "usage_today": 12}),
    ]
    ids = [await record_event(redis, t.tenant, kind, data) for kind, data in sent]

    assert await deliver_all(settings, redis) == 3

    got = {r.headers["webhook-id"]: r for r in receiver.received}
    assert sorted(got) == sorted(ids)
    now_s = int(time.time())
    for event_id, (kind, data) in zip(ids, sent, strict=True):
        request = got[event_id]
        assert request.method == "POST"
        assert request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert abs(int(request.headers["webhook-timestamp"]) - now_s) <= 60
        assert verify_signature(secret, request.headers, request.body)
        assert not verify_signature(secret, request.headers, request.body + b" ")
        body = json.loads(request.body)
        entry_id = event_id.rsplit("_", 1)[1]
        ms = int(entry_id.split("-")[0])
        assert body == {
            "id": event_id,
            "type": kind,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
            + f".{ms % 1000:03d}Z",
            "tenant": t.tenant,
            "data": data,
        }
    log = await log_of(redis, t.tenant)
    assert {(e["event_id"], e["outcome"], e["attempts"], e["status_code"]) for e in log} == {
        (i, "delivered", 1, 200) for i in ids
    }
    # everything read was acknowledged
    assert (await redis.xpending(keys.events(t.tenant), GROUP))["pending"] == 0


async def test_failed_attempt_is_retried_with_the_same_id(settings, redis, receiver):
    receiver.respond = statuses(500, 200)
    t, secret = await webhook_tenant(redis, settings.keyring, receiver.url)
    event_id = await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

    await deliver_all(settings, redis)

    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    assert first.body == second.body
    assert verify_signature(secret, first.headers, first.body)
    assert verify_signature(secret, second.headers, second.body)
    log = await log_of(redis, t.tenant)  # newest first
    assert [(e["outcome"], e["attempts"], e["status_code"], e["error"]) for e in log] == [
        ("delivered", 2, 200, None),
        ("retrying", 1, 500, "HTTP 500"),
    ]


async def test_gives_up_after_max_attempts(settings, redis, receiver):
    receiver.respond = statuses(503)
    settings = dataclasses.replace(settings, webhook_max_attempts=3)
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    event_id = await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

    await deliver_all(settings, redis)

    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id] * 3
    log = await log_of(redis, t.tenant)
    assert [(e["outcome"], e["attempts"]) for e in log] == [
        ("failed", 3),
        ("retrying", 2),
        ("retrying", 1),
    ]
    assert log[0]["error"] == "HTTP 503"


async def test_redirect_is_not_followed(settings, redis, receiver):
    receiver.respond = statuses(302)
    settings = dataclasses.replace(settings, webhook_max_attempts=1)
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

    await deliver_all(settings, redis)

    assert len(receiver.received) == 1
    (entry,) = await log_of(redis, t.tenant)
    assert (entry["outcome"], entry["status_code"], entry["error"]) == ("failed", 302, "HTTP 302")


async def test_slow_receiver_times_out(settings, redis, receiver):
    async def hang(_):
        await asyncio.sleep(30)
        return 200

    receiver.respond = hang
    settings = dataclasses.replace(settings, webhook_max_attempts=1, webhook_timeout_s=0.2)
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

    await deliver_all(settings, redis)

    (entry,) = await log_of(redis, t.tenant)
    assert entry["outcome"] == "failed"
    assert entry["status_code"] is None
    assert entry["error"].startswith("timeout")


async def test_a_2xx_whose_body_comes_slowly_is_delivered_not_a_timeout(settings, redis):
    """The status line is the receiver's answer: a body still arriving when the timeout
    ends must not turn a 200 into a failed attempt (and the event into a duplicate)."""

    release, released = asyncio.Event(), asyncio.Event()

    async def answer_then_stall(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )  # fmt: skip
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nok")
            await writer.drain()
            await release.wait()  # the other 98 bytes never come
        finally:
            writer.close()
            released.set()

    server = await asyncio.start_server(answer_then_stall, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    settings = dataclasses.replace(settings, webhook_max_attempts=2, webhook_timeout_s=0.2)
    t, _ = await webhook_tenant(redis, settings.keyring, url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})
    try:
        await deliver_all(settings, redis)
    finally:
        release.set()
        server.close()
        await asyncio.wait_for(released.wait(), 5)  # its socket closed before the test ends

    (entry,) = await log_of(redis, t.tenant)
    assert (entry["outcome"], entry["attempts"], entry["status_code"]) == ("delivered", 1, 200)


async def test_unreachable_receiver_is_a_failed_attempt(settings, redis):
    closed = await Receiver().start()
    await closed.close()  # nothing listens on its port any more
    settings = dataclasses.replace(settings, webhook_max_attempts=2)
    t, _ = await webhook_tenant(redis, settings.keyring, closed.url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

    await deliver_all(settings, redis)

    log = await log_of(redis, t.tenant)
    assert [(e["outcome"], e["attempts"]) for e in log] == [("failed", 2), ("retrying", 1)]
    assert log[0]["error"].startswith("connect error")


async def test_removed_webhook_fails_without_sending(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})
    await deliver_all_after(settings, redis, lambda: redis.hdel(keys.tenant(t.tenant), "wh_url"))

    assert receiver.received == []
    (entry,) = await log_of(redis, t.tenant)
    assert (entry["outcome"], entry["error"]) == ("failed", "no webhook configured")


async def test_deleted_tenant_leaves_no_trace(settings, redis, receiver):
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})
    await deliver_all_after(settings, redis, lambda: redis.delete(keys.tenant(t.tenant)))

    assert receiver.received == []
    assert not await redis.exists(keys.deliveries(t.tenant))


async def deliver_all_after(settings, redis, change):
    """Pump, apply `change` (the job runs after it), then run the jobs."""
    await pump(redis).pump_once()
    await change()
    async with worker(settings, FAST) as w:
        await w.async_run()


async def test_secret_bound_to_its_tenant(settings, redis, receiver):
    """A sealed secret copied to another tenant does not open: that delivery is not signed."""
    a, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    b, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    sealed_a = await redis.hget(keys.tenant(a.tenant), "wh_secret")
    await redis.hset(keys.tenant(b.tenant), "wh_secret", sealed_a)
    await record_event(redis, b.tenant, "key.rotated", {"service": "s"})
    settings = dataclasses.replace(settings, webhook_max_attempts=1)

    await deliver_all(settings, redis)

    assert receiver.received == []
    (entry,) = await log_of(redis, b.tenant)
    assert entry["outcome"] == "failed"
    assert "decrypt" in entry["error"]


async def test_a_delivery_in_flight_during_a_flush_leaves_no_log_behind(settings, redis, receiver):
    """The store flushed (or the tenant deleted) while a receiver answers: the attempt is
    not logged into a delivery log recreated for a tenant that no longer exists (it would
    have no expiry and nothing would ever delete it)."""
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await record_event(redis, t.tenant, "key.expired", {"service": "openai", "key_id": 1})

    async def flush_then_answer(_):
        await redis.flushall()
        return 200

    receiver.respond = flush_then_answer
    assert await deliver_all(settings, redis) == 1
    assert len(receiver.received) == 1
    assert await redis.exists(keys.deliveries(t.tenant)) == 0
