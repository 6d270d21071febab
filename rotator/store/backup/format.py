"""The backup file: JSON lines a person can read with jq, each one authenticated.

    {"record":"header","format":"keyrotator-backup","version":1,"schema_version":1,...,"mac":"…"}
    {"record":"tenant","id":"8f69d888e6834a4e","read_at":"…","keys":[…],"mac":"…"}   one per tenant
    {"record":"end","lines":N,"tenants":T,"keys":K,"mac":"…"}

A logical format, not DUMP payloads: those are tied to the server's RDB version (a Valkey 9
dump does not load into Redis 7), and nobody can read them. A key is its name after the
tenant's hash tag, its Redis type, its expiry as an instant, and its value; a value that
is UTF-8 is a JSON string, anything else (sealed secrets) is `{"b64": "…"}`.

Integrity: each line's `mac` is HMAC-SHA256 over the previous line's MAC and this line
(without its `mac` member), under a key derived with HKDF from a master key (the ring's
first key when the backup was made; the header names its fingerprint and a random salt).
So a changed byte, a dropped, repeated or reordered line, or a missing end is found, at
its line, before anything is written; and without the master key nobody can forge a file
that passes (restoring needs that key anyway, to open the secrets).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterator
from typing import BinaryIO

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rotator.crypto import KeyRing, fingerprint
from rotator.domain import tokens
from rotator.domain.errors import RotatorError
from rotator.store.keys import SCHEMA_VERSION

FORMAT = "keyrotator-backup"
FORMAT_VERSION = 1
"""The file's layout (this module). A reader refuses a newer one."""

SALT_BYTES = 16
_HKDF_INFO = b"keyrotator backup v1: line MACs"
_CHAIN_START = b"keyrotator-backup\x00"
_MAC_MEMBER = b',"mac":"'
_MAC_HEX_CHARS = 64
_MAC_TAIL = len(_MAC_MEMBER) + _MAC_HEX_CHARS + len(b'"}')


class FileRefused(RotatorError):
    """The file is not a complete, authentic backup this version can restore. Raised
    before anything is written; the message names the line, never a value."""


class KeyNotConfigured(Exception):
    """The master key the file (or its secrets) needs is not in the configured ring.
    A settings problem (ROTATOR_MASTER_KEY), like the same refusal at start."""


# --- values -------------------------------------------------------------------------------
class B64(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A value that is not UTF-8 text (a sealed secret), base64."""

    b64: str


Item = str | B64
"""One Redis string: as text when it is UTF-8, else base64. Exact either way."""


def item(raw: bytes) -> Item:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return B64(base64.b64encode(raw).decode())


def raw(value: Item) -> bytes:
    """The bytes an Item stands for; ValueError for base64 that is not."""
    if isinstance(value, str):
        return value.encode()
    try:
        return base64.b64decode(value.b64, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None


# --- keys ---------------------------------------------------------------------------------
class _Key(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
           tag_field="type"):  # fmt: skip
    name: str
    """After the tenant's hash tag: `svc:openai` is `{t:<tenant>}:svc:openai`."""
    expires_at_ms: int | None = None
    """When the key expires (ms since the epoch), None for never: an instant, so a
    restore days later does not stretch a usage counter's life."""


class StringKey(_Key, tag="string", kw_only=True):
    value: Item


class HashKey(_Key, tag="hash", kw_only=True):
    value: list[tuple[Item, Item]]
    """(field, value), by field."""


class SetKey(_Key, tag="set", kw_only=True):
    value: list[Item]
    """Members, sorted."""


class ZSetKey(_Key, tag="zset", kw_only=True):
    value: list[tuple[Item, str]]
    """(member, score) by score, the score as the server writes it (exact)."""


class ListKey(_Key, tag="list", kw_only=True):
    value: list[Item]
    """Head first."""


class StreamGroup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Item
    last_delivered_id: str
    pending: int
    """Entries handed to a consumer and not acknowledged (not delivered for sure)."""
    first_pending_id: str | None
    """The oldest of them: a restore delivers again from there (at-least-once)."""


class StreamKey(_Key, tag="stream", kw_only=True):
    entries: list[tuple[str, list[tuple[Item, Item]]]]
    """(entry id, its fields), oldest first, of the entries not surely delivered (pending
    or after a group's last delivered entry; all of them without a group): acknowledged
    events are done. Ids are kept, so event ids are too."""
    last_id: str
    """The stream's last generated id (XSETID): no id is handed out twice."""
    max_deleted_id: str
    entries_added: int
    groups: list[StreamGroup]


KeyRecord = StringKey | HashKey | SetKey | ZSetKey | ListKey | StreamKey


# --- lines --------------------------------------------------------------------------------
class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
              tag_field="record"):  # fmt: skip
    pass


class Header(_Record, tag="header", kw_only=True):
    format: str
    version: int
    schema_version: int
    created_at: str
    created_ms: int
    tenants: int
    mac_key: str
    """Fingerprint of the master key the MACs are derived from (never the key)."""
    salt: str
    """Hex; the HKDF salt, so no two files share a MAC key."""
    sealed_with: list[str]
    """Fingerprints of the master keys the file's secrets are sealed with (store/
    keyring.py's canary included); a secret sealed before fingerprints is `id <ring id>`."""
    keyring: list[tuple[Item, Item]]
    """`kr:keyring` as it was: the canary (sealed) and the keys data may be sealed with."""
    demo_tenant: str | None
    """`kr:demo_tenant`, when that tenant is in the file."""


class TenantRecord(_Record, tag="tenant", kw_only=True):
    id: str
    read_at: str
    read_at_ms: int
    """The instant the tenant was read (one script): the file holds it as it was then."""
    keys: list[KeyRecord]


class End(_Record, tag="end", kw_only=True):
    lines: int
    """Lines in the file, this one included."""
    tenants: int
    keys: int


Line = Header | TenantRecord | End


class _Preamble(msgspec.Struct, frozen=True):
    """What any version's header holds, read before the rest (which a newer version may
    lay out differently)."""

    record: str
    format: str
    version: int
    schema_version: int = 0


_encode = msgspec.json.Encoder().encode
_decode_line = msgspec.json.Decoder(Line).decode
_decode_preamble = msgspec.json.Decoder(_Preamble).decode


def mac_key(master_key: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(master_key)


class _Chain:
    """The running MAC: each line's covers every line before it."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._previous = _CHAIN_START

    def next(self, body: bytes) -> bytes:
        mac = hmac.new(self._key, self._previous + body, hashlib.sha256).digest()
        self._previous = mac
        return mac


class Writer:
    """Writes records as authenticated lines to a binary file."""

    def __init__(self, out: BinaryIO, ring: KeyRing, salt: bytes) -> None:
        self.out = out
        self.key_fingerprint = ring.primary_fingerprint
        self._chain = _Chain(mac_key(ring.keys[0][1], salt))
        self.lines = 0
        self.bytes = 0

    def write(self, record: Line) -> None:
        self.write_body(_encode(record))

    def write_body(self, body: bytes) -> None:
        """A record already encoded (as `encode` gives it)."""
        mac = self._chain.next(body).hex().encode()
        line = body[:-1] + _MAC_MEMBER + mac + b'"}\n'
        self.out.write(line)
        self.lines += 1
        self.bytes += len(line)


def encode(record: Line) -> bytes:
    return _encode(record)


def decode(body: bytes) -> Line:
    """A record encoded by `encode` (a spooled line: trusted, written by this process)."""
    return _decode_line(body)


def _split(line: bytes) -> tuple[bytes, bytes] | None:
    """(body without its mac member, the mac as written: lowercase hex) of one line, None
    when it has no mac member."""
    if len(line) < _MAC_TAIL + 2 or not line.endswith(b'"}'):
        return None
    tail = line[-_MAC_TAIL:]
    if not tail.startswith(_MAC_MEMBER):
        return None
    return line[:-_MAC_TAIL] + b"}", tail[len(_MAC_MEMBER) : -2]


def _matches(chain: _Chain, parts: tuple[bytes, bytes] | None) -> bool:
    """Whether a line's mac is the chain's next, compared as written (hex in capitals
    would decode to the same bytes: a changed file that must not pass)."""
    body, mac_hex = parts or (b"", b"")
    return hmac.compare_digest(chain.next(body).hex().encode(), mac_hex)


def read_verified(source: BinaryIO, ring: KeyRing, name: str) -> Iterator[tuple[bytes, Line]]:
    """Every line of the file as (its MAC in hex, its record), each one checked before it is
    yielded; FileRefused (or KeyNotConfigured) at the first problem. The end record is
    the last thing yielded: a caller that reached it has seen a complete file."""
    lines = iter(source)
    first = next(lines, b"")
    header = _header(first, name)
    master = next((k for _, k in ring.keys if fingerprint(k).hex() == header.mac_key), None)
    if master is None:
        raise KeyNotConfigured(
            f"{name} is authenticated with master key {header.mac_key}, which is not "
            f"configured (configured: {', '.join(ring.fingerprints)}); a restore needs the "
            "master keys the backup was made with"
        )
    try:
        salt = bytes.fromhex(header.salt)
    except ValueError:
        raise FileRefused(f"{name}: line 1 (header): salt is not hex") from None
    chain = _Chain(mac_key(master, salt))
    parts = _split(first[:-1] if first.endswith(b"\n") else first)
    if not _matches(chain, parts):
        raise FileRefused(f"{name}: line 1 (header) does not match its MAC: {_CHANGED}")
    assert parts is not None
    yield parts[1], header

    seen: list[str] = []
    number = 1
    for line in lines:
        number += 1
        if not line.endswith(b"\n"):
            raise FileRefused(f"{name}: line {number} is cut short: the file is truncated")
        parts = _split(line[:-1])
        if parts is None or not _matches(chain, parts):
            raise FileRefused(f"{name}: line {number} does not match its MAC: {_CHANGED}")
        record = _checked(parts[0], number, name, seen)
        if isinstance(record, End):
            if next(lines, None) is not None:
                raise FileRefused(f"{name}: there are lines after the end record (line {number})")
            counted = (record.lines, record.tenants, len(seen))
            if counted != (number, header.tenants, header.tenants):
                raise FileRefused(
                    f"{name}: the end record does not match the file ({len(seen)} tenants in "
                    f"{number} lines; header says {header.tenants} tenants)"
                )
            yield parts[1], record
            return
        yield parts[1], record
    raise FileRefused(
        f"{name} ends after line {number} without its end record: the file is truncated"
    )


_CHANGED = "the file was changed, damaged, or its lines reordered"


def _header(line: bytes, name: str) -> Header:
    not_ours = FileRefused(f"{name} is not a keyrotator backup (line 1 is not its header)")
    parts = _split(line.rstrip(b"\n"))
    if parts is None:
        raise not_ours
    try:
        preamble = _decode_preamble(parts[0])
    except msgspec.DecodeError:
        raise not_ours from None
    if preamble.record != "header" or preamble.format != FORMAT:
        raise not_ours
    if preamble.version != FORMAT_VERSION:
        raise FileRefused(
            f"{name} is a {FORMAT} of format version {preamble.version}; this rotator reads "
            f"version {FORMAT_VERSION}: restore it with the rotator version that made it"
        )
    if preamble.schema_version > SCHEMA_VERSION:
        # the store's data format (kr:schema) the file was written from; an older one is
        # brought up to date after the restore (load.restore)
        raise FileRefused(
            f"{name} holds data of store schema version {preamble.schema_version}, newer "
            f"than this rotator's ({SCHEMA_VERSION}): restore it with a newer rotator"
        )
    try:
        header = _decode_line(parts[0])
    except msgspec.DecodeError as exc:
        raise FileRefused(f"{name}: line 1 (header): {exc}") from None
    if not isinstance(header, Header):
        raise not_ours
    return header


def _checked(body: bytes, number: int, name: str, seen: list[str]) -> Line:
    """The record of an authentic line, with the checks a MAC cannot make for us (a file
    written by a buggy or a hostile rotator that held the key)."""
    try:
        record = _decode_line(body)
    except msgspec.DecodeError as exc:
        raise FileRefused(f"{name}: line {number} is not a valid record: {exc}") from None
    if isinstance(record, Header):
        raise FileRefused(f"{name}: line {number} is a second header")
    if isinstance(record, TenantRecord):
        if not tokens.is_tenant_id(record.id) or (seen and record.id <= seen[-1]):
            raise FileRefused(f"{name}: line {number}: tenant id out of order or malformed")
        names = [k.name for k in record.keys]
        if len(set(names)) != len(names) or any(not n or "{" in n for n in names):
            raise FileRefused(f"{name}: line {number}: a key name is repeated or malformed")
        seen.append(record.id)
    return record
