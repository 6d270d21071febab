"""arq workers: the event pump, webhook delivery and the expiry sweep.

`run_worker(settings)` is what `rotator worker` runs (and `make run` beside the API).
Never imports rotator.api: workers talk to the store only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from rotator.settings import MASTER_KEY_FILE, Settings, SettingsError
from workers.config import WorkerConfig

__all__ = ["WorkerConfig", "run_worker"]


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): ~1/3 more deliveries/s."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_worker(settings: Settings, config: WorkerConfig | None = None) -> None:
    """Run one worker process until SIGINT/SIGTERM, through store outages of any length
    (workers/supervisor.py).

    Embedded mode (no REDIS_URL): joins the data dir's Valkey (or starts it), as the API does.
    """
    from rotator.crypto import KeyRing
    from rotator.embedded import SharedEmbedded
    from workers.settings import queue_url
    from workers.supervisor import supervise

    if not logging.getLogger().handlers:  # a host process (a test) keeps its own
        from rotator import logs

        logs.configure(settings.log_level, settings.log_format)
    shared = None
    try:
        if settings.embedded:
            shared = SharedEmbedded(settings.data_dir)
            settings = dataclasses.replace(settings, redis_url=shared.acquire())
        key_file = settings.data_dir / MASTER_KEY_FILE
        if settings.master_key is None and key_file.exists():
            # `rotator run` may have generated it after these settings were read
            ring = KeyRing.parse(key_file.read_text().strip())
            settings = dataclasses.replace(settings, master_key=ring)
        settings.keyring  # noqa: B018 -- refuse to start without one (SettingsError names it)
        queue_url(settings)  # likewise for a cluster without QUEUE_URL
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(supervise(settings, config or WorkerConfig()))
    except SettingsError as exc:
        raise SystemExit(f"rotator worker: {exc}") from None
    finally:
        if shared is not None:
            shared.release()
