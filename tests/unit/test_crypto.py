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
    fingerprint,
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
    header = 1 + 8  # version, fingerprint
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


# --- blobs name their key by fingerprint (v2); v1 blobs (label inside) still open ------------
def raw_of(b64: str) -> bytes:
    return base64.b64decode(b64)


def seal_v1(kid: str, raw: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """A blob as e1a71c5 and earlier sealed it: version 1, the ring id of the key inside."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return bytes((1, len(kid))) + kid.encode() + nonce + AESGCM(raw).encrypt(nonce, plaintext, aad)


def test_a_blob_carries_the_fingerprint_not_the_id():
    key = b64key()
    blob = KeyRing.parse(f"some-label:{key}").seal(SECRET, AAD)
    assert blob[0] == 2 and b"some-label" not in blob
    assert blob[1:9] == fingerprint(raw_of(key))
    assert KeyRing.parse(key).fingerprint_of(blob) == fingerprint(raw_of(key)).hex()


def test_renaming_a_key_in_the_ring_is_harmless():
    old, new = b64key(), b64key()
    bare = KeyRing.parse(old).seal(SECRET, AAD)
    labelled = KeyRing.parse(f"first:{old}").seal(SECRET, AAD)
    renamed = KeyRing.parse(f"new:{new},old:{old}")
    assert renamed.open(bare, AAD) == SECRET
    assert renamed.open(labelled, AAD) == SECRET
    assert renamed.key_id_of(bare) == "old"
    # the first key renamed: nothing to rewrap (compared by fingerprint, not by id)
    assert not KeyRing.parse(f"renamed:{old}").needs_rewrap(bare)
    assert renamed.needs_rewrap(bare)


def test_v1_blob_of_a_bare_key_opens_after_the_key_is_named():
    """The defect: a ring `new:<NEW>,old:<OLD>` could not open what the bare <OLD> sealed."""
    old, new = b64key(), b64key()
    short = fingerprint(raw_of(old)).hex()[:8]
    assert KeyRing.parse(old).primary_id == short  # the id a bare key always had
    blob = seal_v1(short, raw_of(old), SECRET, AAD)
    assert KeyRing.parse(f"new:{new},old:{old}").open(blob, AAD) == SECRET


def test_v1_blob_opens_by_its_id_or_by_any_key_of_the_ring():
    k1, k2, k3 = b64key(), b64key(), b64key()
    by_id = seal_v1("k2", raw_of(k2), SECRET, AAD)
    ring = KeyRing.parse(f"k1:{k1},k2:{k2}")
    assert ring.open(by_id, AAD) == SECRET
    # the id is gone (renamed): every other key is tried
    assert KeyRing.parse(f"a:{k1},b:{k2}").open(by_id, AAD) == SECRET
    # the id names another key now: that one fails, the right one is found after it
    assert KeyRing.parse(f"k2:{k1},x:{k2}").open(by_id, AAD) == SECRET
    with pytest.raises(DecryptError):  # no key of the ring sealed it
        KeyRing.parse(f"k2:{k3},k1:{k1}").open(by_id, AAD)
    with pytest.raises(DecryptError):  # the right key, the wrong record
        ring.open(by_id, aad_for_key("t1", "openai", 8))
    assert ring.key_id_of(by_id) == "k2" and ring.fingerprint_of(by_id) is None
    assert ring.needs_rewrap(by_id) and KeyRing.parse(f"k2:{k2}").needs_rewrap(by_id)


def test_every_tampered_byte_of_a_v1_blob_fails():
    key = b64key()
    blob = seal_v1("k1", raw_of(key), SECRET, AAD)
    ring = KeyRing.parse(f"k1:{key}")
    # the id (bytes 2-3) only says which key to try first: a changed one still finds the key
    assert ring.open(flip(blob, 2), AAD) == SECRET
    for index in (0, 1, *range(4, len(blob))):
        with pytest.raises(DecryptError):
            ring.open(flip(blob, index), AAD)
    for bad in (blob[:-1], blob[:6], b"\x01\x05k1"):
        with pytest.raises(DecryptError):
            ring.open(bad, AAD)


def test_seal_by_another_key_of_the_ring():
    k1, k2 = b64key(), b64key()
    ring = KeyRing.parse(f"a:{k1},b:{k2}")
    blob = ring.seal(SECRET, AAD, by=fingerprint(raw_of(k2)).hex())
    assert ring.key_id_of(blob) == "b" and KeyRing.parse(k2).open(blob, AAD) == SECRET
    with pytest.raises(KeyRingError):
        ring.seal(SECRET, AAD, by="00" * 8)


def test_fingerprints_are_listed_in_ring_order():
    k1, k2 = b64key(), b64key()
    ring = KeyRing.parse(f"a:{k1},{k2}")
    assert ring.fingerprints == (fingerprint(raw_of(k1)).hex(), fingerprint(raw_of(k2)).hex())
    assert ring.primary_fingerprint == ring.fingerprints[0]
    assert all(len(fp) == 16 for fp in ring.fingerprints)
