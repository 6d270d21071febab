"""arq WorkerSettings, built from the same Settings object as the API.

The job queue lives on ROTATOR_QUEUE_URL, or else on the data Redis. arq needs one
plain Redis for its queue (its enqueue is a multi-key transaction), so with a Redis
Cluster as the data store QUEUE_URL is required.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import func

from rotator.cancel import cancel_and_wait
from rotator.folded_log import FoldedWarning
from rotator.settings import Settings, SettingsError
from rotator.store import connection
from rotator.store.address import StoreAddress
from rotator.tally import Tally
from workers.config import WorkerConfig
from workers.deletions import finish_tenant_deletions
from workers.deliver import JOB_NAME, MAX_JOB_RUNS, TargetCache, deliver_event
from workers.health import alive_key
from workers.pump import EventPump
from workers.sweep import sweep_time_services
from workers.webhook_client import WebhookClient

log = logging.getLogger("workers")


def queue_url(settings: Settings) -> str:
    if settings.queue_url:
        return settings.queue_url
    if settings.redis_cluster:
        raise SettingsError(
            "queue_url",
            "required with ROTATOR_REDIS_CLUSTER=1: the arq job queue needs a single "
            "(non-cluster) Redis or Valkey; set ROTATOR_QUEUE_URL=redis://host:port/0",
        )
    assert settings.redis_url, "the embedded server is started before the worker settings"
    return settings.redis_url


def queue_redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings, set field by field from the one reading of the queue URL
    (rotator/store/address.py), not by arq's from_dsn, which drops every TLS parameter and
    turns hostname checking off: the same URL means the same connection as for the data."""
    address = StoreAddress.parse(queue_url(settings))
    return RedisSettings(
        host=address.host,
        port=address.port,
        unix_socket_path=address.unix_path,
        database=address.db,
        username=address.username,
        password=address.password,
        # arq's TLS fields carry redis-py's names: one mapping, TlsOptions.redis_kwargs
        **(address.tls.redis_kwargs() if address.tls is not None else {}),
    )


def worker_settings(
    settings: Settings,
    config: WorkerConfig | None = None,
    *,
    consumer: str | None = None,
    outage: FoldedWarning | None = None,
    tally: Tally | None = None,
) -> dict[str, Any]:
    """Keyword arguments of arq.Worker (arq accepts a dict as its settings).

    `consumer`: the event pump's consumer name (kept across the Workers of one process,
    workers/supervisor.py); `outage`: where store failures are reported, folded; `tally`:
    where jobs are counted for the summary line (kept across Workers too).
    """
    config = config or WorkerConfig()
    return {
        "functions": [
            func(
                deliver_event,
                name=JOB_NAME,
                timeout=settings.webhook_timeout_s + config.job_timeout_margin_s,
                keep_result=config.job_keep_result_s,
                # the job counts its attempts and decides when to stop (and logs
                # "failed"); arq's cap counts deferrals too and must never bite
                max_tries=MAX_JOB_RUNS,
            )
        ],
        "cron_jobs": [
            cron(
                sweep_time_services,
                name="sweep_time_services",
                # every minute, on one worker (arq cron jobs are unique per tick)
                second=set(config.sweep_seconds),
                timeout=config.sweep_timeout_s,
                keep_result=0,
            ),
            cron(
                finish_tenant_deletions,
                name="finish_tenant_deletions",
                second=30,  # every minute, half a minute away from the sweep
                timeout=config.sweep_timeout_s,
                keep_result=0,
            ),
        ],
        # no retries inside arq's connect (a warning line per try): the supervisor retries
        "redis_settings": dataclasses.replace(queue_redis_settings(settings), conn_retries=0),
        "ctx": {
            "settings": settings,
            "config": config,
            "consumer": consumer,
            "outage": outage,
            "tally": tally or Tally(),
        },
        "on_startup": startup,
        "on_shutdown": shutdown,
        # alive, for `rotator worker --check` (workers/health.py): arq's own health check
        "health_check_interval": config.health_check_interval_s,
        "health_check_key": alive_key(),
        "max_jobs": config.max_jobs,
        "poll_delay": config.poll_delay_s,
        "keep_result": config.job_keep_result_s,
    }


async def startup(ctx: dict[str, Any]) -> None:
    """Open the data-store client and the webhook client; start this worker's event pump."""
    settings: Settings = ctx["settings"]
    config: WorkerConfig = ctx["config"]
    settings.keyring  # noqa: B018 -- fail at startup, not at the first delivery
    ctx["data"] = connection.connect(settings)
    ctx["webhooks"] = WebhookClient(
        allow_private=settings.webhook_allow_private,
        timeout_s=settings.webhook_timeout_s,
        max_connections=config.http_max_connections,
    )
    ctx["targets"] = TargetCache(config.target_cache_s)
    ctx["inflight"] = Counter()  # deliveries running now, per tenant (workers/deliver.py)
    if config.pump:
        pump = EventPump(
            ctx["data"],
            ctx["redis"],
            config,
            consumer=ctx.get("consumer"),
            outage=ctx.get("outage"),
            tally=ctx.get("tally"),
        )
        ctx["pump"] = pump
        ctx["pump_task"] = asyncio.create_task(pump.run_forever(), name="event-pump")


async def stop_pump(ctx: dict[str, Any]) -> None:
    """Cancel this Worker's event pump and wait for it (a no-op when it has none)."""
    task = ctx.pop("pump_task", None)
    if task is not None:
        await cancel_and_wait(task)  # again and again: one cancel can be lost (cancel.py)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def shutdown(ctx: dict[str, Any]) -> None:
    await stop_pump(ctx)
    if "webhooks" in ctx:
        await ctx.pop("webhooks").aclose()
    if "data" in ctx:
        await ctx.pop("data").aclose()
