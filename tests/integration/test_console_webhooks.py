"""Settings → Webhooks in the console: the secret shown once, the test event delivered and
signed by the workers whatever types are subscribed, the deliveries listed."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from rotator.store import keys
from tests.integration.console_support import field_errors, post_form, sign_in
from tests.integration.management import new_tenant
from tests.integration.webhook_support import FAST, verify_signature, worker
from workers.pump import EventPump

pytestmark = pytest.mark.backends("single", "cluster")


async def deliver_all(settings, redis) -> int:
    """Pump once and run the queued jobs; the queue is the plain Valkey on both backends."""
    queue = aioredis.Redis.from_url(settings.queue_url or settings.redis_url)
    try:
        moved = await EventPump(redis, queue, FAST, consumer="test-pump").pump_once()
    finally:
        await queue.aclose()
    async with worker(settings) as w:
        await w.async_run()
    return moved


async def test_send_test_event_reaches_the_receiver_signed(client, redis, settings, receiver):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/settings/webhook/test", {})
    assert "Set a webhook URL first" in (await client.get(r.headers["location"])).text
    assert await redis.exists(keys.events(t.id)) == 0  # nothing recorded without a webhook

    # only key.rotated subscribed: the test event is sent anyway
    r = await post_form(
        client,
        "/app/settings/webhook",
        {"webhook_url": receiver.url + "/hook", "webhook_events": ["key.rotated"]},
    )
    assert r.status_code == 200 and "only time it is shown" in r.text
    secret = r.text.split('id="webhook-secret" class="mono" type="text" readonly value="')[1]
    secret = secret.split('"')[0]
    assert secret.startswith("whsec_")
    page = await client.get("/app/settings")
    assert secret not in page.text and "webhook.test" in page.text
    assert 'value="key.rotated" checked' in page.text
    assert 'value="key.delivered"' in page.text and 'value="key.delivered" checked' not in page.text

    r = await post_form(client, "/app/settings/webhook/test", {})
    assert r.headers["location"] == "/app/settings?done=test-sent#webhooks"
    assert await deliver_all(settings, redis) == 1
    (got,) = await receiver.wait_for(1)
    assert verify_signature(secret, got.headers, got.body)
    body = json.loads(got.body)
    assert body["type"] == "webhook.test" and body["tenant"] == t.id

    fragment = await client.get("/app/settings/deliveries", headers={"hx-request": "true"})
    assert "<html" not in fragment.text and "webhook.test" in fragment.text
    assert "delivered" in fragment.text and ">200<" in fragment.text


async def test_a_new_signing_secret_is_shown_once_and_removal_stops_webhooks(
    client, redis, receiver
):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    url = receiver.url + "/hook"
    first = await post_form(client, "/app/settings/webhook", {"webhook_url": url})
    assert "whsec_" in first.text
    again = await post_form(
        client, "/app/settings/webhook", {"webhook_url": url, "webhook_events": ["key.expired"]}
    )
    assert again.status_code == 303  # no new secret: nothing to show
    fresh = await post_form(
        client,
        "/app/settings/webhook",
        {"webhook_url": url, "webhook_events": ["key.expired"], "new_secret": "1"},
    )
    assert fresh.status_code == 200 and "whsec_" in fresh.text
    r = await post_form(client, "/app/settings/webhook", {"webhook_url": ""})
    assert r.headers["location"] == "/app/settings?done=webhook-removed#webhooks"
    assert not await redis.sismember(keys.WEBHOOK_TENANTS, t.id)
    r = await post_form(client, "/app/settings/webhook", {"webhook_url": "mailto:ops@example.com"})
    assert r.status_code == 400 and "webhook_url" in field_errors(r)
