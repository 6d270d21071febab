"""Shared by the commands: errors, output, settings, the master key, the data store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rotator.crypto import KeyRing, KeyRingError, generate_master_key
from rotator.settings import MASTER_KEY_FILE, Settings, SettingsError

if TYPE_CHECKING:
    from rotator.store.address import StoreAddress

T = TypeVar("T")


class CliError(Exception):
    """A one-line failure for stderr, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """Progress and notes go to stderr, so stdout stays parseable. A reader of stderr that
    went away (`2>&1 | head`) does not stop the work: they are advice, and what follows
    goes to /dev/null."""
    if sys.stderr is None:  # started with stderr closed (`2>&-`): never onto stdout
        return
    try:
        print(f"rotator: {message}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        to_devnull(sys.stderr)


def to_devnull(stream: Any) -> None:
    """Point a closed pipe's stream at /dev/null: what it still buffers, and the
    interpreter's flush at exit, then go nowhere instead of raising again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def store_unavailable(cause: str) -> str:
    """The one line for a store that did not answer (exit 2); `cause`: the error's name."""
    return f"store unavailable ({cause}); check ROTATOR_REDIS_URL"


def redact(url: str) -> str:
    """A Redis URL fit for a message: the password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _key_file_ring(settings: Settings) -> KeyRing | None:
    """DATA_DIR/master.key, when it exists (`rotator run` may have written it after these
    settings were read)."""
    path = settings.data_dir / MASTER_KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return KeyRing.parse(text)
    except KeyRingError as exc:
        raise SettingsError("master_key", f"{path}: {exc}") from None


def _generate_key_file(settings: Settings) -> KeyRing:
    """Write a new DATA_DIR/master.key (mode 0600) and return it.

    O_EXCL makes the generation race-free: of two processes starting at once, one
    writes the file and both use it.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / MASTER_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        ring = _key_file_ring(settings)
        assert ring is not None
        return ring
    text = generate_master_key()
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    say(
        f"generated a master key in {path.resolve()} (mode 0600); back it up: "
        "without it the stored provider keys cannot be decrypted"
    )
    return KeyRing.parse(text)


async def _no_key_for_external_store(
    redis: Any, settings: Settings, path: pathlib.Path
) -> SettingsError:
    """No key for a store we did not start: say which key its data needs, or how to make
    one (none is generated: every process of the deployment must share it)."""
    from rotator.store import keyring as keyring_store

    if await keyring_store.holds_sealed_data(redis):
        named = ", ".join(await keyring_store.sealed_with(redis)) or "an unknown key"
        need = f"its data is sealed with master key {named}: set ROTATOR_MASTER_KEY to that key"
    else:
        need = (
            "the store holds no sealed data yet: set ROTATOR_MASTER_KEY to a new key, the "
            "same in every process (docs/configuration.md says how to make one); none is "
            "generated for a store this process did not start"
        )
    store = redact(settings.redis_url or "")
    return SettingsError("master_key", f"not set and no {path}; for the store {store}, {need}")


async def _unlock(redis: Any, durability: Any, settings: Settings, *, seals: bool) -> KeyRing:
    """The master key ring for this store, checked against the canary (store/keyring.py).

    In embedded mode with no key anywhere, a key is generated only for a store that holds
    no sealed data: for any other, a new key would start a service that answers 500 to
    every delivery, and hide that the real key was lost.
    """
    from rotator.store import keyring as keyring_store

    ring = settings.master_key or _key_file_ring(settings)
    path = (settings.data_dir / MASTER_KEY_FILE).resolve()
    from_env = bool(os.environ.get("ROTATOR_MASTER_KEY", "").strip())
    source = "ROTATOR_MASTER_KEY" if from_env else str(path)
    if ring is None:
        if not settings.embedded:
            raise await _no_key_for_external_store(redis, settings, path)
        if await keyring_store.holds_sealed_data(redis):
            named = ", ".join(await keyring_store.sealed_with(redis)) or "an unknown key"
            raise SettingsError(
                "master_key",
                f"not set, and {path} is missing, but the store in "
                f"{settings.data_dir.resolve()} holds data sealed with master key {named}: "
                f"restore {MASTER_KEY_FILE} from your backup (mode 0600) or set "
                "ROTATOR_MASTER_KEY to that key; no new key was generated",
            )
        ring = _generate_key_file(settings)
        source = MASTER_KEY_FILE
    try:
        unlocked = await keyring_store.unlock(redis, durability, ring, seals=seals, now_ms=now_ms())
    except keyring_store.KeyRingMismatch as exc:
        raise SettingsError(
            "master_key",
            f"{exc} (keys from {source}); configure the key the data was sealed with "
            "(a key's fingerprint: the first 16 hex digits of the SHA-256 of its 32 bytes)",
        ) from None
    if unlocked.unconfigured:
        say(
            "note: data may also be sealed with master key "
            f"{', '.join(unlocked.unconfigured)}, which is not configured; if deliveries "
            "fail to decrypt, add it to ROTATOR_MASTER_KEY and run `rotator rewrap`"
        )
    return ring


@contextlib.contextmanager
def unlocked_store(settings: Settings, *, seals: bool) -> Iterator[Settings]:
    """data_store, with a master key ring that opens what the store holds.

    The ring: ROTATOR_MASTER_KEY, else DATA_DIR/master.key, else (embedded mode, a store
    with no sealed data) a generated one. A ring that cannot open the store's data is
    refused (SettingsError naming ROTATOR_MASTER_KEY: exit 2) before anything starts.
    `seals`: this process will seal secrets (recorded in the store, see store/keyring.py).
    """
    with data_store(settings) as live:  # with no key, _unlock says which key the data needs
        ring = with_store(live, lambda r, d: _unlock(r, d, settings, seals=seals))
        yield dataclasses.replace(live, master_key=ring)


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
        raise unanswered("ROTATOR_REDIS_URL", address, exc) from None


def unanswered(setting: str, address: StoreAddress, exc: BaseException) -> CliError:
    """Exit 2 in one line naming the setting whose store did not answer (or refused: BUSY,
    OOM …) with a single command: its reply is the server's, no pipeline's arguments."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CliError(f"{setting}: {address.display} does not answer ({reason})", 2)


@contextlib.contextmanager
def data_store(settings: Settings) -> Iterator[Settings]:
    """Settings whose redis_url answers: the configured server, or the embedded one."""
    from rotator.embedded import SharedEmbedded

    shared = None
    if settings.embedded:
        shared = SharedEmbedded(settings.data_dir)
        fresh = not settings.data_dir.exists()
        try:
            url = shared.acquire()
        except (RuntimeError, OSError) as exc:
            raise CliError(f"ROTATOR_DATA_DIR: embedded Valkey: {exc}", 2) from None
        if fresh:
            # the data dir is relative (`var`): run from another directory, a command would
            # otherwise work on a new, empty store beside the one in use, and say nothing
            say(f"note: started a new, empty store in {settings.data_dir.resolve()} "
                "(ROTATOR_DATA_DIR)")  # fmt: skip
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


def read_secret(prompt: str) -> str:
    """A secret from stdin when piped, else a hidden prompt; never from argv (which other
    users see in `ps` and shells keep in their history). Read as text by the one rule
    (`text_of`); surrounding whitespace dropped."""
    import getpass

    if sys.stdin is None or not sys.stdin.isatty():
        piped = read_text_file("-").strip()
        if "\n" in piped:  # the store would only say "control characters", naming no source
            raise CliError("stdin: more than one line; pipe in one secret, on one line")
        return piped
    try:
        typed = getpass.getpass(prompt)
    except UnicodeDecodeError:  # the terminal's bytes, which getpass decodes itself
        raise not_text("stdin") from None
    # back to bytes so the one rule judges it too: a lone surrogate stays invalid UTF-8
    return text_of(typed.encode("utf-8", "surrogatepass"), "stdin").strip()


def file_name(file: str) -> str:
    """How errors name a FILE argument: `-` is stdin."""
    return "stdin" if file == "-" else file


def not_text(source: str) -> CliError:
    """The refusal of input that is not UTF-8 text; `source` names where it came from (a
    FILE, stdin, an argument's flag). The input itself is never in it: it may be a secret."""
    return CliError(f"{source}: not UTF-8 text")


def is_text(value: str) -> bool:
    """Whether `value` is text UTF-8 can hold: not if it holds a lone surrogate, which is how
    Python keeps a byte that was not UTF-8 (the command line is decoded with
    surrogateescape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


BOM = "\ufeff"
"""The byte order mark some editors (Notepad) write first: no part of a key or a token."""


def text_of(data: bytes, source: str) -> str:
    """`data`, read from `source`, as text: the one rule for every file, pipe and prompt the
    CLI reads. Strict UTF-8 (stdin is read as bytes, not through Python's locale-dependent
    decoding, which in the C and C.UTF-8 locales keeps a bad byte as a lone surrogate that no
    store write can encode); a leading BOM dropped, so a secret piped in and the same line in
    a file are one secret, not two."""
    try:
        return data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError:
        raise not_text(source) from None


def read_text_file(file: str) -> str:
    """The text of FILE (`-`: stdin), by `text_of`. A file that cannot be read or is not
    UTF-8 is a CliError naming it; the text itself is never in a message (it may hold
    secrets)."""
    from pathlib import Path

    if file == "-" and sys.stdin is None:  # started with stdin closed (`0<&-`)
        raise CliError("stdin: closed; pipe the input in, or name a file")
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise CliError(f"{file_name(file)}: {exc.strerror or exc}") from None
    return text_of(data, file_name(file))


def token_file_arg_help(what: str) -> str:
    return (
        f"import {what} from FILE (- reads stdin) instead of a new one: the token the client "
        "already uses with the hosted service (20-200 of A-Z a-z 0-9 - _). Read from a file, "
        "never from the command line, which other users see in `ps` and shells keep"
    )


def read_chosen_token(args: argparse.Namespace) -> None:
    """`--token-file FILE`: the whole file, surrounding whitespace (a final newline) dropped,
    in `args.chosen_token` (None without the option). The value is never printed."""
    file = getattr(args, "token_file", None)
    args.chosen_token = None if file is None else read_text_file(file).strip()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def emit(args: argparse.Namespace, fields: dict[str, Any]) -> None:
    """The command's result on stdout: `name: value` lines, or one JSON object (--json)."""
    if args.json:
        print(json.dumps(fields))
    else:
        for name, value in fields.items():
            print(f"{name}: {'-' if value is None else value}")


def deletion_advice(path: str) -> str:
    """How to get rid of the file now that its secrets are sealed in the store."""
    if path == "-":
        return "the keys came from stdin: delete whatever file fed it (see docs/migration.md)"
    how = f"shred -u {path}" if shutil.which("shred") else f"rm {path} (shred is not installed)"
    return (
        f"the keys are sealed in the store: delete {path} now, e.g. `{how}`. Copies may "
        "remain in backups, synced folders, the download folder and editors' swap or "
        "history files: remove those too. On SSDs and copy-on-write file systems shred "
        "cannot promise the old blocks are gone; rotate keys that were exposed."
    )
