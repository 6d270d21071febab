"""Shared by the commands: errors, output, settings, the master key, the data store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rotator.crypto import KeyRing, KeyRingError, generate_master_key
from rotator.settings import MASTER_KEY_FILE, Settings, SettingsError

T = TypeVar("T")


class CliError(Exception):
    """A one-line failure for stderr, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """Progress and notes go to stderr, so stdout stays parseable."""
    print(f"rotator: {message}", file=sys.stderr, flush=True)


def redact(url: str) -> str:
    """A Redis URL fit for a message: the password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def ensure_master_key(settings: Settings) -> Settings:
    """The settings with a key ring; in embedded mode, generate DATA_DIR/master.key if none.

    O_EXCL makes the generation race-free: of two processes starting at once, one
    writes the file and both use it.
    """
    if settings.master_key is not None or not settings.embedded:
        settings.keyring  # noqa: B018 -- raises SettingsError naming ROTATOR_MASTER_KEY
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / MASTER_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
    else:
        text = generate_master_key()
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        say(
            f"generated a master key in {path.resolve()} (mode 0600); back it up: "
            "without it the stored provider keys cannot be decrypted"
        )
    try:
        ring = KeyRing.parse(text)
    except KeyRingError as exc:
        raise SettingsError("master_key", f"{path}: {exc}") from None
    return dataclasses.replace(settings, master_key=ring)


def check_reachable(settings: Settings) -> None:
    """PING the data store; exit 2 naming ROTATOR_REDIS_URL when it does not answer.

    The client is configured from the same reading of the URL as every other one
    (StoreAddress), so a certificate the service would refuse is refused here, at start.
    """
    import redis

    from rotator.store.address import AddressError, StoreAddress

    assert settings.redis_url is not None
    timeout_s = settings.redis_timeout_ms / 1000
    try:
        address = StoreAddress.parse(settings.redis_url)
    except AddressError as exc:  # validated with the settings; the embedded URL is plain
        raise CliError(f"ROTATOR_REDIS_URL: {exc}", 2) from None
    try:
        client = redis.Redis(
            **address.redis_kwargs(), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        with contextlib.closing(client):
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(
            f"ROTATOR_REDIS_URL: {address.display} does not answer ({reason})", 2
        ) from None


@contextlib.contextmanager
def data_store(settings: Settings) -> Iterator[Settings]:
    """Settings whose redis_url answers: the configured server, or the embedded one."""
    from rotator.embedded import SharedEmbedded

    shared = None
    if settings.embedded:
        shared = SharedEmbedded(settings.data_dir)
        try:
            url = shared.acquire()
        except (RuntimeError, OSError) as exc:
            raise CliError(f"ROTATOR_DATA_DIR: embedded Valkey: {exc}", 2) from None
        settings = dataclasses.replace(settings, redis_url=url)
    try:
        check_reachable(settings)
        yield settings
    finally:
        if shared is not None:
            shared.release()


def with_store(settings: Settings, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run `work(redis, durability)` against the data store, in a fresh event loop."""
    from rotator.store.connection import Durability, connect

    async def go() -> T:
        client = connect(settings)
        try:
            return await work(client, Durability())
        finally:
            await client.aclose()

    return asyncio.run(go())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def emit(args: argparse.Namespace, fields: dict[str, Any]) -> None:
    """The command's result on stdout: `name: value` lines, or one JSON object (--json)."""
    if args.json:
        print(json.dumps(fields))
    else:
        for name, value in fields.items():
            print(f"{name}: {'-' if value is None else value}")
