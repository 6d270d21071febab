"""AES-256-GCM sealing: what opens, and everything that must not."""

from __future__ import annotations

import base64
import os

import pytest

from rotator.crypto import (
    DecryptError,
    KeyRing,
    KeyRingError,
    aad_for_key,
    aad_for_webhook_secret,
    generate_master_key,
)

SECRET = b"sk-proj-0123456789abcdefghijklmnopqrstuvwxyz"
AAD = aad_for_key("t1", "openai", 7)


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.parse(f"k1:{b64key()}")


def flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


def test_round_trip_and_fresh_nonce(ring):
    a, b = ring.seal(SECRET, AAD), ring.seal(SECRET, AAD)
    assert ring.open(a, AAD) == SECRET and ring.open(b, AAD) == SECRET
    assert a != b  # a fresh 96-bit nonce per encryption
    header = 2 + len("k1")
    assert a[header : header + 12] != b[header : header + 12]
    assert SECRET not in a


def test_every_tampered_byte_fails(ring):
    blob = ring.seal(SECRET, AAD)
    for index in range(len(blob)):
        with pytest.raises(DecryptError):
            ring.open(flip(blob, index), AAD)


def test_truncated_or_extended_blob_fails(ring):
    blob = ring.seal(SECRET, AAD)
    for bad in (blob[:-1], blob + b"\x00", blob[:5], b"", b"\x01"):
        with pytest.raises(DecryptError):
            ring.open(bad, AAD)


@pytest.mark.parametrize(
    "moved_to",
    [
        aad_for_key("t1", "openai", 8),  # another key id
        aad_for_key("t2", "openai", 7),  # another tenant
        aad_for_key("t1", "anthropic", 7),  # another service
        aad_for_webhook_secret("t1"),  # another kind of record
    ],
)
def test_ciphertext_moved_to_another_record_fails(ring, moved_to):
    blob = ring.seal(SECRET, AAD)
    with pytest.raises(DecryptError):
        ring.open(blob, moved_to)


def test_aad_fields_cannot_be_shifted():
    # the separator keeps ("t1", "a_b", 7) and ("t1_a", "b", 7) apart, however ids look
    assert aad_for_key("t1", "a", 17) != aad_for_key("t1", "a1", 7)
    assert aad_for_key("t", "1a", 7) != aad_for_key("t1", "a", 7)


def test_wrong_master_key_fails(ring):
    blob = ring.seal(SECRET, AAD)
    other_bytes_same_id = KeyRing.parse(f"k1:{b64key()}")
    unknown_id = KeyRing.parse(f"k2:{b64key()}")
    for wrong in (other_bytes_same_id, unknown_id):
        with pytest.raises(DecryptError):
            wrong.open(blob, AAD)


def test_first_key_seals_all_keys_open():
    old, new = b64key(), b64key()
    before = KeyRing.parse(f"old:{old}")
    blob = before.seal(SECRET, AAD)
    after = KeyRing.parse(f"new:{new},old:{old}")
    assert after.primary_id == "new"
    assert after.open(blob, AAD) == SECRET
    assert after.key_id_of(blob) == "old" and after.needs_rewrap(blob)
    fresh = after.seal(SECRET, AAD)
    assert after.key_id_of(fresh) == "new" and not after.needs_rewrap(fresh)
    with pytest.raises(DecryptError):  # the old ring alone cannot open the new blob
        before.open(fresh, AAD)


def test_bare_key_gets_a_fingerprint_id():
    raw = b64key()
    assert KeyRing.parse(raw).primary_id == KeyRing.parse(raw).primary_id
    assert KeyRing.parse(raw).primary_id != KeyRing.parse(b64key()).primary_id
    assert KeyRing.parse(generate_master_key()).keys[0][1].__len__() == 32


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not base64!", "base64"),
        (base64.b64encode(b"x" * 16).decode(), "16 bytes"),
        (base64.b64encode(b"x" * 33).decode(), "33 bytes"),
        ("", "empty"),
        (" , ", "empty"),
        ("a b:" + base64.b64encode(b"x" * 32).decode(), "letters"),
        ("k:{0},k:{0}".format(base64.b64encode(b"x" * 32).decode()), "twice"),
        ("k" * 33 + ":" + base64.b64encode(b"x" * 32).decode(), "longer"),
    ],
)
def test_malformed_rings_are_refused(text, problem):
    with pytest.raises(KeyRingError, match=problem):
        KeyRing.parse(text)
