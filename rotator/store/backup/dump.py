"""The backup: every tenant read in one step each, then written out with its MACs.

Consistency: each tenant is as it was at its own instant (its `read_at`); two tenants
may be read seconds apart, which is harmless since nothing links tenants. The tenants
are read first into a spool file next to the target (so the header can count the ones
still there at the end: one deleted meanwhile is left out), then the header, the lines
and the end record go to a temporary file (mode 0600) that is fsynced and renamed into
place: FILE is a complete backup or absent, never half-written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from rotator.crypto import KeyRing, blob_key_name
from rotator.domain.clock import Clock, iso_ms, utc_day
from rotator.store import keys, migrations
from rotator.store.backup import derived, format, selection
from rotator.store.backup.snapshot import BackupExists, BackupFailed, read_tenant
from rotator.store.connection import Redis, as_str

Progress = Callable[[int, int], None]
"""Called with (tenants done, tenants in all) after each tenant."""


class BackupReport(msgspec.Struct, frozen=True, kw_only=True):
    file: str
    created_at: str
    tenants: int
    keys: int
    bytes: int
    reread: int
    """Tenants read again because a service or app appeared while they were listed."""
    vanished: int
    """Tenants deleted while the backup ran (not in the file)."""
    unlisted_keys: int
    """Keys under the tag of a tenant not in kr:tenants (one being deleted): left out."""
    sealed_with: list[str]


async def write_backup(
    redis: Redis,
    ring: KeyRing,
    path: Path,
    *,
    clock: Clock,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> BackupReport:
    """Back up every tenant to `path` (refused if it exists, unless `overwrite`; a directory
    always)."""
    if path.is_dir():
        raise BackupFailed(
            f"{path} is a directory: give the path of the file to write, e.g. "
            f"{path / 'keyrotator.backup'}"
        )
    if path.exists() and not overwrite:
        raise BackupExists(path)
    with _spool(path) as spool:
        created_ms = clock()
        tenants = sorted(m.decode() for m in await redis.smembers(keys.TENANTS))
        listed = await selection.tenant_keys(redis, data_only=True)
        known = set(tenants)
        unlisted = sum(len(names) for tenant, names in listed.items() if tenant not in known)
        keyring_fields = sorted((await redis.hgetall(keys.KEYRING)).items())
        demo = as_str(await redis.get(keys.DEMO_TENANT))
        schema_version = await migrations.stored_version(redis)  # the format read

        sealed_with = {blob_key_name(v) for f, v in keyring_fields if f == b"canary"}
        written = key_count = reread = 0
        for done, tenant in enumerate(tenants, 1):
            record, reads = await read_tenant(
                redis, tenant, listed.get(tenant, set()), today=utc_day(clock())
            )
            reread += reads > 0
            if record is not None:
                _spooled(spool, path, format.encode(record) + b"\n")
                written += 1
                key_count += len(record.keys)
                sealed_with |= {blob_key_name(b) for _, b, _ in derived.sealed_blobs(record)}
            if progress is not None:
                progress(done, len(tenants))
        spool.seek(0)
        header = format.Header(
            format=format.FORMAT,
            version=format.FORMAT_VERSION,
            schema_version=schema_version,
            created_at=iso_ms(created_ms),
            created_ms=created_ms,
            tenants=written,
            mac_key=ring.primary_fingerprint,
            salt=os.urandom(format.SALT_BYTES).hex(),
            sealed_with=sorted(sealed_with),
            keyring=[(format.item(f), format.item(v)) for f, v in keyring_fields],
            demo_tenant=demo if demo in known else None,
        )
        size = _write_file(path, ring, header, spool, key_count, overwrite=overwrite)
    return BackupReport(
        file=str(path),
        created_at=header.created_at,
        tenants=written,
        keys=key_count,
        bytes=size,
        reread=reread,
        vanished=len(tenants) - written,
        unlisted_keys=unlisted,
        sealed_with=header.sealed_with,
    )


@contextlib.contextmanager
def _spool(path: Path) -> Iterator[BinaryIO]:
    """A temporary file next to `path` (deleted when closed). Made before anything is
    read, so an unwritable directory is said at once."""
    try:
        spool = tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.spool.")  # noqa: SIM115
    except OSError as exc:
        raise BackupFailed(f"{path}: cannot write there ({exc.strerror or exc})") from None
    with spool:
        yield spool


def _spooled(spool: BinaryIO, path: Path, line: bytes) -> None:
    # only this write's OSError is the disk's: the store's errors must stay theirs (exit 2)
    try:
        spool.write(line)
    except OSError as exc:
        raise BackupFailed(f"{path}: cannot write ({exc.strerror or exc})") from None


def _write_file(
    path: Path, ring: KeyRing, header: format.Header, spool: BinaryIO, key_count: int,
    *, overwrite: bool,
) -> int:  # fmt: skip
    """Header, spooled tenants and end record, MACed, into a temporary file renamed to
    `path` once it is on disk. Returns its size."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise BackupFailed(f"{path}: cannot write there ({exc.strerror or exc})") from None
    tmp = Path(tmp_name)  # mkstemp: mode 0600, like master.key: the file is as sensitive
    try:
        with os.fdopen(fd, "wb") as out:
            writer = format.Writer(out, ring, bytes.fromhex(header.salt))
            writer.write(header)
            for line in spool:
                writer.write_body(line.rstrip(b"\n"))
            writer.write(format.End(lines=writer.lines + 1, tenants=header.tenants, keys=key_count))
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # refuses, unlike a rename, if the file appeared meanwhile
            tmp.unlink()
    except FileExistsError:
        raise BackupExists(path) from None
    except OSError as exc:  # disk full, I/O error: not the store's (which would be exit 2)
        raise BackupFailed(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)
    return writer.bytes


def _fsync_dir(directory: Path) -> None:
    """The rename on disk too (a crash after it must not bring the old name back)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
