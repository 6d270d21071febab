"""Is a worker running on this host? What `rotator worker --check` (the container health
check) answers.

Each arq Worker records that it is alive with arq's own health check: every
`health_check_interval_s` its poll loop writes a key that expires one second after the
next write is due, holding arq's counts. The key is named for the host
(keys.worker_alive): in a container the host is the container, so the check run inside
it answers for its own worker, not for any worker of the queue. It is absent while no
Worker of the host runs: the process died, hangs (its poll loop stopped), or waits out a
store outage (it cannot work then either).
"""

from __future__ import annotations

import socket

import redis.asyncio as aioredis

from rotator.store import keys
from rotator.store.address import StoreAddress


def alive_key() -> str:
    """This host's key (arq's health_check_key of every Worker started here)."""
    return keys.worker_alive(socket.gethostname())


async def check(queue_url: str, timeout_s: float) -> str | None:
    """arq's health record of this host's worker in the queue at `queue_url`, or None when
    none is alive. Raises what redis-py raises when that store does not answer."""
    client = aioredis.Redis(
        **StoreAddress.parse(queue_url).redis_kwargs(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    try:
        record = await client.get(alive_key())
    finally:
        await client.aclose()
    return record.decode(errors="replace") if record is not None else None
