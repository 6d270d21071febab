"""Cluster slot of a key, against the values Redis documents (no server)."""

from __future__ import annotations

from rotator.store.fast.cluster import key_slot


def test_documented_slots() -> None:
    assert key_slot("somekey") == 11058
    assert key_slot("foo{hash_tag}") == key_slot("bar{hash_tag}") == 2515
    assert key_slot("123456789") == 0x31C3  # the CRC16/XMODEM check value


def test_hash_tag_rules() -> None:
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{}{bar}") == key_slot(b"foo{}{bar}")  # empty tag: the whole key
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")  # the first { to the first }
    assert key_slot("foo{bar}{zap}") == key_slot("bar")
