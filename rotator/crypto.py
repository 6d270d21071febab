"""AES-256-GCM sealing of provider keys under a ring of master keys.

A sealed blob (version 2) is `b"\\x02" | fingerprint(8) | nonce(12) | ciphertext+tag`,
where the fingerprint is the first 8 bytes of SHA-256 of the master key that sealed it.
Blobs name their key by what it is, not by the id the ring gives it, so renaming a key
in the ring (`<bare>` -> `old:<same key>`) changes nothing for the data it sealed.

Version 1 (written before 2026-12) is `b"\\x01" | len(id) | id | nonce(12) | ct+tag`,
carrying the ring id of the sealing key. Such blobs still open: the key with that id
(or, for a key that was bare, that short fingerprint) is tried first, then every other
key of the ring (GCM fails fast on a wrong key). `rotator rewrap` moves them to v2.

The associated data binds a blob to its record (tenant, service, key id), so a blob
copied to another record fails to open. The first key of the ring seals; every key of
the ring opens, which is what lets `rotator rewrap` move to a new key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_V1 = 1
_V2 = 2
_NONCE_BYTES = 12
FINGERPRINT_BYTES = 8
"""64 bits: enough that two master keys of one deployment never share one by chance.
It only picks the key to try; the GCM tag is what authenticates."""
_SHORT_FINGERPRINT_CHARS = 8
"""The id of a bare key in a ring (and so in v1 blobs): the first 8 hex digits."""


class KeyRingError(ValueError):
    """The master key configuration is malformed."""


class DecryptError(Exception):
    """A blob cannot be opened: tampered, moved to another record, or unknown master key."""


def aad_for_key(tenant: str, service: str, key_id: int) -> bytes:
    """Associated data of a provider key's ciphertext."""
    return f"key\x1f{tenant}\x1f{service}\x1f{key_id}".encode()


def aad_for_webhook_secret(tenant: str) -> bytes:
    """Associated data of a tenant's webhook signing secret."""
    return f"whsec\x1f{tenant}".encode()


def generate_master_key() -> str:
    """A new master key, base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode()


def fingerprint(raw: bytes) -> bytes:
    """What a v2 blob names its sealing key by: sha256(key)[:8]. Reveals nothing usable
    about a 256-bit random key, so it may appear in blobs, the store and messages."""
    return hashlib.sha256(raw).digest()[:FINGERPRINT_BYTES]


def blob_fingerprint(blob: bytes) -> str | None:
    """Hex fingerprint of the key a v2 blob was sealed with; None for a v1 blob (it names
    its key by ring id) or a malformed one. No key, no decryption."""
    if len(blob) > FINGERPRINT_BYTES and blob[0] == _V2:
        return blob[1 : 1 + FINGERPRINT_BYTES].hex()
    return None


def blob_key_name(blob: bytes) -> str:
    """How a blob names its key, for messages: a hex fingerprint (v2) or `id <id>` (v1)."""
    fp = blob_fingerprint(blob)
    if fp is not None:
        return fp
    try:
        if blob[0] == _V1:
            return f"id {blob[2 : 2 + blob[1]].decode()}"
    except (IndexError, UnicodeDecodeError):
        pass
    return "a malformed blob"


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; `keys[0]` seals."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("no master key")
        # AESGCM objects are built once: constructing one per call costs more than the decrypt.
        ciphers = {kid: AESGCM(raw) for kid, raw in self.keys}
        by_fp: dict[bytes, AESGCM] = {}
        by_short: dict[str, AESGCM] = {}
        for kid, raw in self.keys:
            fp = fingerprint(raw)
            by_fp.setdefault(fp, ciphers[kid])
            by_short.setdefault(fp.hex()[:_SHORT_FINGERPRINT_CHARS], ciphers[kid])
        object.__setattr__(self, "_ciphers", ciphers)
        object.__setattr__(self, "_by_fp", by_fp)
        object.__setattr__(self, "_by_short", by_short)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Parse `base64` or `id:base64,id:base64,...`; an id defaults to a key fingerprint."""
        keys: list[tuple[str, bytes]] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            kid, _, b64 = part.rpartition(":")
            try:
                raw = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError("not base64 (expected base64 of 32 bytes)") from None
            if len(raw) != 32:
                raise KeyRingError(f"decodes to {len(raw)} bytes, expected 32")
            kid = kid or fingerprint(raw).hex()[:_SHORT_FINGERPRINT_CHARS]
            if not kid.isascii() or not kid.replace("-", "").replace("_", "").isalnum():
                raise KeyRingError(f"key id {kid!r} must be letters, digits, - or _")
            if len(kid) > 32:
                raise KeyRingError(f"key id {kid!r} is longer than 32 characters")
            if any(kid == k for k, _ in keys):
                raise KeyRingError(f"key id {kid!r} appears twice")
            keys.append((kid, raw))
        if not keys:
            raise KeyRingError("empty")
        return cls(tuple(keys))

    @property
    def primary_id(self) -> str:
        return self.keys[0][0]

    @property
    def primary_fingerprint(self) -> str:
        """Hex fingerprint of the sealing key."""
        return fingerprint(self.keys[0][1]).hex()

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """Hex fingerprints of every key, in ring order (what messages show, never a key)."""
        return tuple(fingerprint(raw).hex() for _, raw in self.keys)

    def seal(self, plaintext: bytes, aad: bytes, *, by: str | None = None) -> bytes:
        """A v2 blob sealed under the first key, or under the key whose hex fingerprint is
        `by` (the key-ring canary is sealed by the key that sealed the data it stands for)."""
        raw = self.keys[0][1]
        if by is not None:
            raw = next((r for _, r in self.keys if fingerprint(r).hex() == by), b"")
            if not raw:
                raise KeyRingError(f"no key with fingerprint {by} in the ring")
        fp = fingerprint(raw)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._by_fp[fp].encrypt(nonce, plaintext, aad)  # type: ignore[attr-defined]
        return bytes((_V2,)) + fp + nonce + sealed

    def open(self, blob: bytes, aad: bytes) -> bytes:
        try:
            if blob[0] == _V2:
                nonce_at = 1 + FINGERPRINT_BYTES
                cipher = self._by_fp[blob[1:nonce_at]]  # type: ignore[attr-defined]
                nonce = blob[nonce_at : nonce_at + _NONCE_BYTES]
                return cipher.decrypt(nonce, blob[nonce_at + _NONCE_BYTES :], aad)
            if blob[0] == _V1:
                return self._open_v1(blob, aad)
            raise DecryptError("unknown ciphertext version")
        except (IndexError, KeyError, UnicodeDecodeError, InvalidTag, ValueError) as exc:
            raise DecryptError(type(exc).__name__) from None

    def _open_v1(self, blob: bytes, aad: bytes) -> bytes:
        """The key the blob names first (by id, or by the short fingerprint a bare key had as
        its id), then every other key: the id may have been renamed since it was sealed."""
        id_end = 2 + blob[1]
        kid = blob[2:id_end].decode()
        nonce = blob[id_end : id_end + _NONCE_BYTES]
        if len(nonce) != _NONCE_BYTES:
            raise ValueError("truncated")
        body = blob[id_end + _NONCE_BYTES :]
        named = self._ciphers.get(kid) or self._by_short.get(kid)  # type: ignore[attr-defined]
        candidates = [named] if named is not None else []
        candidates += [c for c in self._ciphers.values() if c is not named]  # type: ignore[attr-defined]
        for cipher in candidates:
            try:
                return cipher.decrypt(nonce, body, aad)
            except InvalidTag:
                continue
        raise InvalidTag()

    def opener_of(self, blob: bytes, aad: bytes) -> str | None:
        """Hex fingerprint of the ring key that opens `blob`, None when none does. Tries
        each key on its own (a start-up check, not the hot path)."""
        for kid, raw in self.keys:
            try:
                KeyRing(((kid, raw),)).open(blob, aad)
            except DecryptError:
                continue
            return fingerprint(raw).hex()
        return None

    def fingerprint_of(self, blob: bytes) -> str | None:
        return blob_fingerprint(blob)

    def key_id_of(self, blob: bytes) -> str:
        """The ring id of the key a blob was sealed with (no decryption): for a v2 blob the
        id this ring gives that key (its hex fingerprint if the ring lacks it); for a v1
        blob the id it carries."""
        fp = self.fingerprint_of(blob)
        if fp is None:
            return blob[2 : 2 + blob[1]].decode()
        return next((kid for kid, raw in self.keys if fingerprint(raw).hex() == fp), fp)

    def needs_rewrap(self, blob: bytes) -> bool:
        """True unless the blob is v2 under the first key (compared by fingerprint, so a
        renamed first key needs no rewrap; every v1 blob does, to move to v2)."""
        return self.fingerprint_of(blob) != self.primary_fingerprint
