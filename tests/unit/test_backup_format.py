"""The backup file format on its own: exact values, and no change of any byte goes unnoticed."""

from __future__ import annotations

import base64
import io
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.crypto import KeyRing
from rotator.store.backup import format
from rotator.store.backup.format import (
    End,
    FileRefused,
    HashKey,
    Header,
    KeyNotConfigured,
    StreamGroup,
    StreamKey,
    StringKey,
    TenantRecord,
    ZSetKey,
)
from rotator.store.backup.load import id_before

RING = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())


@given(st.binary(max_size=200))
def test_every_value_comes_back_exactly(value: bytes):
    encoded = format.encode(
        TenantRecord(id="a1", read_at="", read_at_ms=0,
                     keys=[StringKey(name="x", value=format.item(value))])
    )  # fmt: skip
    record = format.decode(encoded)
    assert isinstance(record, TenantRecord)
    assert format.raw(record.keys[0].value) == value  # type: ignore[union-attr]


def test_text_stays_readable_and_other_bytes_are_base64():
    assert format.item(b"sk-proj-\xe2\x80\xa2") == "sk-proj-•"
    assert format.item(b"\x02\xff") == format.B64(b64="Av8=")


def small_file(ring: KeyRing = RING) -> bytes:
    out = io.BytesIO()
    writer = format.Writer(out, ring, b"s" * format.SALT_BYTES)
    tenants = [
        TenantRecord(id="a1", read_at="t", read_at_ms=1, keys=[
            HashKey(name="tenant", value=[("name", "acme"), ("wh_secret", format.B64(b64="AQ=="))]),
            ZSetKey(name="void", expires_at_ms=5, value=[("1-0", "12")]),
        ]),
        TenantRecord(id="b2", read_at="t", read_at_ms=2, keys=[
            StreamKey(name="events", entries=[("1-0", [("type", "x")])], last_id="1-0",
                      max_deleted_id="0-0", entries_added=1,
                      groups=[StreamGroup(name="webhooks", last_delivered_id="1-0", pending=0,
                                          first_pending_id=None)]),
        ]),
    ]  # fmt: skip
    writer.write(
        Header(
            format=format.FORMAT, version=1, schema_version=1, created_at="t", created_ms=0,
            tenants=len(tenants), mac_key=ring.primary_fingerprint, salt=(b"s" * 16).hex(),
            sealed_with=[], keyring=[], demo_tenant=None,
        )
    )  # fmt: skip
    for tenant in tenants:
        writer.write(tenant)
    writer.write(End(lines=writer.lines + 1, tenants=len(tenants), keys=3))
    return out.getvalue()


def read_all(data: bytes, ring: KeyRing = RING) -> list:
    return [record for _, record in format.read_verified(io.BytesIO(data), ring, "f")]


def test_a_written_file_reads_back():
    records = read_all(small_file())
    assert [type(r).__name__ for r in records] == ["Header", "TenantRecord", "TenantRecord", "End"]
    assert records[2].keys[0].groups[0].name == "webhooks"


def test_no_single_byte_can_change_unnoticed():
    data = small_file()
    for at in range(len(data)):
        changed = bytearray(data)
        changed[at] ^= 0x20
        with pytest.raises((FileRefused, KeyNotConfigured)):
            read_all(bytes(changed))


def test_no_cut_goes_unnoticed():
    data = small_file()
    for at in range(len(data) - 1):  # every length short of the whole file
        with pytest.raises(FileRefused):
            read_all(data[:at])


def test_lines_cannot_be_dropped_repeated_or_moved():
    lines = small_file().splitlines(keepends=True)
    for changed in (
        [lines[0], lines[2], lines[1], lines[3]],
        [lines[0], lines[1], lines[1], lines[2], lines[3]],
        [lines[0], lines[2], lines[3]],
        [*lines, lines[3]],
    ):
        with pytest.raises(FileRefused):
            read_all(b"".join(changed))


def test_another_key_cannot_read_it():
    other = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyNotConfigured, match=RING.primary_fingerprint):
        read_all(small_file(), other)
    # a ring that holds the key, in any place, reads it
    both = KeyRing(((other.primary_id, other.keys[0][1]), ("old", RING.keys[0][1])))
    assert len(read_all(small_file(), both)) == 4


@pytest.mark.parametrize(
    ("entry_id", "before"),
    [("5-3", "5-2"), ("5-0", "4-18446744073709551615"), ("0-0", "0-0")],
)
def test_the_id_before_a_stream_entry(entry_id: str, before: str):
    assert id_before(entry_id) == before


def test_counts_that_disagree_are_refused_even_with_good_macs():
    """A file MACed by someone holding the key, but not a backup this code wrote."""
    out = io.BytesIO()
    writer = format.Writer(out, RING, b"s" * format.SALT_BYTES)
    writer.write(
        Header(
            format=format.FORMAT, version=1, schema_version=1, created_at="t", created_ms=0,
            tenants=2, mac_key=RING.primary_fingerprint, salt=(b"s" * 16).hex(),
            sealed_with=[], keyring=[], demo_tenant=None,
        )
    )  # fmt: skip
    writer.write(TenantRecord(id="a1", read_at="t", read_at_ms=1, keys=[]))
    writer.write(End(lines=3, tenants=2, keys=0))
    with pytest.raises(FileRefused, match="the end record does not match the file"):
        read_all(out.getvalue())
