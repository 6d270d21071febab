"""Every attempt ends within its job's timeout, and one tenant's stuck receiver does not
hold up another tenant's events (worker slots are shared by every tenant)."""

from __future__ import annotations

import asyncio
import dataclasses

from tests.integration.webhook_support import (
    FAST,
    log_of,
    pump,
    record_event,
    webhook_tenant,
    worker,
)


async def test_a_late_status_with_a_trickling_body_is_still_an_attempt(settings, redis):
    """A 500 status line just inside webhook_timeout_s, then a body that never ends: the
    attempt must be logged (retrying, then failed), not cut off by arq's job timeout,
    which ends the job for good and loses the event without a trace."""

    async def late_500_then_trickle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.4)  # the status line comes just inside the timeout
            writer.write(b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n")
            while True:  # ... and the body trickles forever
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(late_500_then_trickle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    settings = dataclasses.replace(settings, webhook_max_attempts=2, webhook_timeout_s=0.5)
    # the job's arq timeout is webhook_timeout_s + this margin (workers/settings.py)
    config = dataclasses.replace(FAST, job_timeout_margin_s=0.3)
    t, _ = await webhook_tenant(redis, settings.keyring, url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})
    try:
        await pump(redis, config).pump_once()
        async with worker(settings, config) as w:
            await w.async_run()
    finally:
        server.close()

    log = await log_of(redis, t.tenant)
    assert [(e["outcome"], e["attempts"], e["status_code"]) for e in log] == [
        ("failed", 2, 500),
        ("retrying", 1, 500),
    ]


async def test_a_stuck_receiver_does_not_hold_up_other_tenants(settings, redis, receiver):
    """Tenant A's receiver never answers and A has many events queued; tenant B's one event,
    recorded just after, must not wait for all of A's attempts to time out."""
    stuck = asyncio.Event()

    async def hang(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            await stuck.wait()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    settings = dataclasses.replace(settings, webhook_max_attempts=1, webhook_timeout_s=0.5)
    config = dataclasses.replace(FAST, max_jobs=4)
    a, _ = await webhook_tenant(redis, settings.keyring, url)
    b, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    for n in range(24):
        await record_event(redis, a.tenant, "key.delivered", {"service": "s", "n": n})
    await record_event(redis, b.tenant, "key.rotated", {"service": "s"})
    loop = asyncio.get_running_loop()
    try:
        await pump(redis, config).pump_once()
        async with worker(settings, config) as w:
            started = loop.time()
            run = asyncio.create_task(w.async_run())
            await receiver.wait_for(1, timeout_s=30)
            waited = loop.time() - started
            await run
    finally:
        stuck.set()
        server.close()

    # 24 stuck attempts of 0.5 s over 4 slots is 3 s of A's work: B's event must not be
    # queued behind all of it (a couple of A's timeouts at most)
    assert waited < 1.5, f"tenant B waited {waited:.1f}s behind tenant A's stuck receiver"
