"""Decrypted provider keys of this API process, so a delivery decrypts only when its key changed.

A delivery's key comes from the store sealed (AES-256-GCM, bound to tenant, service and
key id). Opening it costs a few µs and gives the same plaintext every time until the
key's ciphertext changes, which every change of the secret does (a rotation, an import
over it, a rewrap to a new master key: each seals afresh, with a fresh nonce). So an
entry is found by (tenant, service, key id) and used only while the ciphertext the
script just returned is the one it was opened from; any other ciphertext is opened
again and replaces it. Nothing is ever served from a ciphertext other than the one
the store holds now.

What an entry keeps: the plaintext, its masked form, and the 200 body's leading bytes
up to the numbers (service, label, key, masked, policy: see NextKeyBody), rebuilt when
the label or policy differ from the last delivery's.

Bounds and lifetime:
- plaintext lives only in this process's memory (never logged, written or shared);
- at most MAX_SERVICES services, least recently delivered dropped first: with the
  bench's ~3 keys per service about 2 KB each, so ≈ 20 MB at the bound;
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
_BOOL = (b"false", b"true")


class Opened:
    """One key, opened: its plaintext and masked form, and the body prefixes built from it."""

    __slots__ = ("ciphertext", "key", "masked_key", "prefixes")

    def __init__(self, ciphertext: bytes, key: str) -> None:
        self.ciphertext = ciphertext
        self.key = key
        self.masked_key = mask(key)
        self.prefixes: dict[tuple[str, str, bool], bytes] = {}

    def prefix(self, service: str, label: str, policy: str, masked: bool) -> bytes:
        """The 200 body up to the daily limit's value (NextKeyBody.encode)."""
        found = self.prefixes.get((label, policy, masked))
        if found is None:
            if len(self.prefixes) >= 4:  # a label renamed over and over: stay small
                self.prefixes.clear()
            found = self.prefixes[(label, policy, masked)] = (
                b'{"service":%s,"key_label":%s,"key":%s,"masked":%s,"policy":%s,'
                b'"limits":{"max_daily_requests":'
                % (
                    _encode(service),
                    _encode(label),
                    _encode(self.masked_key if masked else self.key),
                    _BOOL[masked],
                    _encode(policy),
                )
            )
        return found


class SecretCache:
    """(tenant, service) -> {key id: Opened}, bounded by MAX_SERVICES."""

    def __init__(self, keyring: KeyRing, max_services: int = MAX_SERVICES) -> None:
        self.keyring = keyring
        self.max_services = max_services
        self._services: OrderedDict[tuple[str, str], dict[int, Opened]] = OrderedDict()

    def open(self, tenant: str, service: str, key_id: int, ciphertext: bytes) -> Opened:
        """The key opened from `ciphertext`; raises DecryptError (nothing cached then)."""
        services = self._services
        where = (tenant, service)
        keys = services.get(where)
        if keys is None:
            if len(services) >= self.max_services:
                services.popitem(last=False)
            keys = services[where] = {}
        else:
            services.move_to_end(where)
        opened = keys.get(key_id)
        if opened is not None and opened.ciphertext == ciphertext:
            return opened
        # first delivery of this key in this process, or its secret changed since
        plain = self.keyring.open(ciphertext, aad_for_key(tenant, service, key_id)).decode()
        opened = keys[key_id] = Opened(ciphertext, plain)
        return opened

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
        return any(o.key == plaintext for keys in self._services.values() for o in keys.values())
