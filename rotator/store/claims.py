"""Claims: one process at a time for work that two would spoil (two restores into one empty
store would merge their files). A claim is a string key holding its holder's description,
set only if absent, that lapses CLAIM_TTL_MS after its holder last kept it: a holder that
dies frees it by itself, one that lives keeps it at each step of its work. A holder that
surely ended (a process of this machine that runs no more: killed, or cut off from the
store and exited) is taken over at once, so its work can be run again right away."""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import msgspec

from rotator.domain.clock import iso_ms
from rotator.domain.errors import RotatorError
from rotator.store.connection import Redis
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.records import claim

CLAIM_TTL_MS = 60_000
TAKE_ATTEMPTS = 3
"""Rounds of set-if-absent, read the holder, take it over if it ended: each lost only to
another process that set or took the claim meanwhile."""


class Claimed(RotatorError):
    """Another process holds the claim (or this one lost it): nothing was done. Worth a
    retry once it is done (the CLI's exit 2)."""


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    """A claim's value: what its holder works on, and which process it is."""

    what: str
    since_ms: int
    host: str
    pid: int
    boot: str | None = None
    """/proc/sys/kernel/random/boot_id: one machine, one boot (two machines may share a
    host name, and a pid means nothing on another one). None without /proc."""
    pid_ns: str | None = None
    """/proc/self/ns/pid: a pid names one process only within its pid namespace (each
    container has its own). None without /proc; absent from claims of earlier versions,
    which are never taken over, only wait to lapse."""
    started: int | None = None
    """Its start, in clock ticks since boot (/proc/PID/stat): a later process given the same
    pid is not it."""
    nonce: str


_decode_holder = msgspec.json.Decoder(Holder).decode


class Claim:
    def __init__(self, redis: Redis, name: str, value: str, what: str) -> None:
        self.redis, self.name, self.value, self.what = redis, name, value, what

    async def keep(self) -> None:
        """Hold the claim CLAIM_TTL_MS more; Claimed if it lapsed (this process stalled that
        long) and so another may be at work."""
        if not await run(Plain(self.redis), claim(self.name, self.value, keep_ms=CLAIM_TTL_MS)):
            raise Claimed(
                f"this {self.what} stalled over {CLAIM_TTL_MS // 1000} s and lost its claim "
                f"({self.name}); stopped here: run it again"
            )


@asynccontextmanager
async def claimed(
    redis: Redis, name: str, *, what: str, about: str, now_ms: int
) -> AsyncIterator[Claim]:
    """Hold `name` for the block; Claimed, naming the holder, when another process holds it
    (one that ended on this machine is taken over). `about` says what this holder works on
    (a file name), for the one refused."""
    boot, pid_ns = _machine()
    value = msgspec.json.encode(
        Holder(
            what=about, since_ms=now_ms, host=socket.gethostname(), pid=os.getpid(), boot=boot,
            pid_ns=pid_ns, started=_started(os.getpid()), nonce=secrets.token_hex(8),
        )
    ).decode()  # fmt: skip
    held = await _take(redis, name, value)
    if held is not None:
        raise Claimed(f"another {what} is running: " + _holder(held))
    try:
        yield Claim(redis, name, value, what)
    finally:
        with suppress(Exception):  # the store gone: the claim lapses by itself
            await run(Plain(redis), claim(name, value, keep_ms=0))


async def _take(redis: Redis, name: str, value: str) -> bytes | None:
    """Set the claim `name` to `value`: None once it holds it, else the value of the holder
    that keeps it (None read back: it was given up meanwhile)."""
    held: bytes | None = None
    for _ in range(TAKE_ATTEMPTS):
        if await redis.set(name, value, nx=True, px=CLAIM_TTL_MS):
            return None
        held = await redis.get(name)
        if held is None:  # given up or lapsed since the SET: set it again
            continue
        if not _ended(held):
            return held
        # race point: two runs may both find the holder ended; the script replaces the
        # value only if it is still the one read here, so one takes it over and the other,
        # next round, finds that one (alive) holding it
        if await run(Plain(redis), claim(name, held.decode(), keep_ms=CLAIM_TTL_MS,
                                         take_as=value)):  # fmt: skip
            return None
    return held


def _ended(raw: bytes) -> bool:
    """Whether the claim's holder surely runs no more: a process of this machine (same boot,
    same pid namespace) that is gone. Anything else (another machine or container, a claim
    this version cannot read) may be alive: it keeps the claim until it lapses."""
    try:
        held = _decode_holder(raw)
    except msgspec.DecodeError:  # ValidationError is one
        return False
    if (held.host, held.boot, held.pid_ns) != (socket.gethostname(), *_machine()):
        return False
    return not _running(held.pid, held.started)


_HAS_PROC = Path("/proc/self/stat").exists()
"""Linux: a process's boot, pid namespace and start time can be read, not only its pid."""


@functools.cache
def _machine() -> tuple[str | None, str | None]:
    """This process's boot id and pid namespace (Holder.boot, Holder.pid_ns)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return boot, os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc (not Linux): the host name alone says "this machine"
        return None, None


def _stat(pid: int) -> tuple[str, int]:
    """(state, start in clock ticks since boot) of process `pid`: fields 3 and 22 of
    /proc/PID/stat (its name before them, in parentheses, may hold spaces and ')').
    ProcessLookupError when no process has that pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[19])


def _started(pid: int) -> int | None:
    return _stat(pid)[1] if _HAS_PROC else None


def _running(pid: int, started: int | None) -> bool:
    """Whether process `pid` of this machine runs and is the one that started at `started`."""
    try:
        if not _HAS_PROC:
            # whether some process has that pid: a later one given it passes for the holder,
            # and the claim waits to lapse as it did before holders were taken over
            os.kill(pid, 0)
            return True
        state, start = _stat(pid)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    # Z: it ended and its parent has not reaped it yet; X: being removed
    return state not in ("Z", "X") and (started is None or start == started)


def _holder(raw: bytes | None) -> str:
    try:
        held = _decode_holder(raw or b"")
    except msgspec.DecodeError:
        return "it finished just now, or its claim is unreadable; try again"
    return (
        f"{held.what}, since {iso_ms(held.since_ms)}, pid {held.pid} on {held.host}; wait for "
        f"it to finish (if it died, its claim lapses within {CLAIM_TTL_MS // 1000} s)"
    )
