"""AES-256-GCM sealing of provider keys under a ring of master keys.

A sealed blob is `b"\\x01" | len(key_id) | key_id | nonce(12) | ciphertext+tag`.
The associated data binds it to its record (tenant, service, key id), so a blob
copied to another record fails to open. The first key of the ring seals; every
key of the ring opens, which is what lets `rotator rewrap` move to a new key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = 1
_NONCE_BYTES = 12


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


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; `keys[0]` seals."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("no master key")
        # AESGCM objects are built once: constructing one per call costs more than the decrypt.
        object.__setattr__(self, "_ciphers", {kid: AESGCM(raw) for kid, raw in self.keys})

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
            kid = kid or hashlib.sha256(raw).hexdigest()[:8]
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

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        kid = self.primary_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, plaintext, aad)  # type: ignore[attr-defined]
        encoded_id = kid.encode()
        return bytes((_VERSION, len(encoded_id))) + encoded_id + nonce + sealed

    def open(self, blob: bytes, aad: bytes) -> bytes:
        try:
            if blob[0] != _VERSION:
                raise DecryptError("unknown ciphertext version")
            id_end = 2 + blob[1]
            kid = blob[2:id_end].decode()
            nonce = blob[id_end : id_end + _NONCE_BYTES]
            cipher = self._ciphers[kid]  # type: ignore[attr-defined]
            return cipher.decrypt(nonce, blob[id_end + _NONCE_BYTES :], aad)
        except (IndexError, KeyError, UnicodeDecodeError, InvalidTag, ValueError) as exc:
            raise DecryptError(type(exc).__name__) from None

    def key_id_of(self, blob: bytes) -> str:
        """The master key id a blob was sealed with (no decryption)."""
        return blob[2 : 2 + blob[1]].decode()

    def needs_rewrap(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self.primary_id
