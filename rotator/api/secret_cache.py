"""Decrypted provider keys of this API process, so a delivery decrypts only when its key changed.

A delivery's key comes from the store sealed (AES-256-GCM, bound to tenant, service and
key id). Opening it costs a few µs and gives the same plaintext every time until the
key's ciphertext changes, which every change of the secret does (a rotation, an import
over it, a rewrap to a new master key: each seals afresh, with a fresh nonce). So an
entry is found by (tenant, service, key id) and used only while the ciphertext the
script just returned is the one it was opened from; any other ciphertext is opened
again and replaces it. Nothing is ever served from a ciphertext other than the one
the store holds now.

What an entry keeps: the plaintext, and the 200 body's leading bytes up to the numbers
(service, label, key, masked, policy: see NextKey in api/delivery.py), masked and not,
rebuilt when the label or policy differ from the last delivery's.

Entries are tuples of bytes and str, never objects of ours: CPython's collector stops
tracking such tuples (and dicts holding only them) after its first pass over them. A
full cache of tracked objects (10,000 services, 30,000 keys) made every full collection
walk it: 30-45 ms pauses, about one every 2 s under load, that were /v1/next's p99
(docs/scaling.md §5).

Bounds and lifetime:
- plaintext lives only in this process's memory (never logged, written or shared);
- at most MAX_SERVICES services, least recently delivered dropped first: 24 MB at the
  bound with 3 keys per service (tracemalloc, 56-character keys);
- a deleted key leaves at the next delivery of its service: the store then reports the
  service's new key ids (the script's `fresh_ids`) and prune() drops the others; a
  deleted service or tenant is no longer delivered and ages out by the bound.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

from rotator.crypto import KeyRing, aad_for_key
from rotator.domain.masking import mask

MAX_SERVICES = 10_000
"""Services whose keys are kept decrypted (least recently delivered dropped first)."""

_encode = msgspec.json.Encoder().encode

# one entry: (ciphertext, plaintext, label, policy, body prefix, masked body prefix)
_Entry = tuple[bytes, str, str, str, bytes, bytes]
_CIPHERTEXT, _PLAIN, _LABEL, _POLICY, _PREFIX = 0, 1, 2, 3, 4


def _entry(ciphertext: bytes, plain: str, service: str, label: str, policy: str) -> _Entry:
    head = b'{"service":%s,"key_label":%s,"key":' % (_encode(service), _encode(label))
    tail = b',"policy":%s,"limits":{"max_daily_requests":' % _encode(policy)
    return (
        ciphertext,
        plain,
        label,
        policy,
        head + _encode(plain) + b',"masked":false' + tail,
        head + _encode(mask(plain)) + b',"masked":true' + tail,
    )


class SecretCache:
    """(tenant, service) -> {key id: entry}, bounded by MAX_SERVICES."""

    def __init__(self, keyring: KeyRing, max_services: int = MAX_SERVICES) -> None:
        self.keyring = keyring
        self.max_services = max_services
        self.decrypted = 0
        """Keys decrypted so far (a cache miss each; tests)."""
        self._services: OrderedDict[tuple[str, str], dict[int, _Entry]] = OrderedDict()

    def body_prefix(
        self,
        tenant: str,
        service: str,
        key_id: int,
        ciphertext: bytes,
        label: str,
        policy: str,
        masked: bool,
    ) -> bytes:
        """The 200 body up to the daily limit's value, for the key sealed in `ciphertext`;
        raises DecryptError (nothing cached then)."""
        services = self._services
        where = (tenant, service)
        keys = services.get(where)
        if keys is None:
            if len(services) >= self.max_services:
                services.popitem(last=False)
            keys = services[where] = {}
        else:
            services.move_to_end(where)
        entry = keys.get(key_id)
        if entry is None or entry[_CIPHERTEXT] != ciphertext:
            # first delivery of this key in this process, or its secret changed since
            aad = aad_for_key(tenant, service, key_id)
            plain = self.keyring.open(ciphertext, aad).decode()
            self.decrypted += 1
            entry = keys[key_id] = _entry(ciphertext, plain, service, label, policy)
        elif entry[_LABEL] != label or entry[_POLICY] != policy:
            entry = keys[key_id] = _entry(ciphertext, entry[_PLAIN], service, label, policy)
        return entry[_PREFIX + masked]

    def prune(self, tenant: str, service: str, key_ids: tuple[str, ...]) -> None:
        """The service's keys are now `key_ids`: forget the others (deleted keys)."""
        keys = self._services.get((tenant, service))
        if keys:
            live = {int(i) for i in key_ids if i}
            for key_id in [k for k in keys if k not in live]:
                del keys[key_id]

    def __len__(self) -> int:
        """Keys held (tests, observability)."""
        return sum(len(keys) for keys in self._services.values())

    def holds(self, plaintext: str) -> bool:
        """Whether any entry holds `plaintext` (tests: a deleted key's plaintext is gone)."""
        return any(
            e[_PLAIN] == plaintext for keys in self._services.values() for e in keys.values()
        )
