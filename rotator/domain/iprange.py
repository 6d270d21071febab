"""IP allowlists as fixed-width hex ranges, so the delivery script matches by string compare.

Every address is mapped into one 128-bit space (IPv4 as IPv4-mapped IPv6,
::ffff:a.b.c.d), written as 32 lowercase hex digits. Equal-width hex strings
order like the numbers they encode, so `lo <= ip <= hi` in Lua is a CIDR test
without any bit arithmetic. A packed allowlist is the concatenation of
64-character `lo || hi` chunks; empty means "allow all".
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from rotator.domain.errors import InvalidField

_V4_MAPPED = 0xFFFF << 32
MAX_ENTRIES = 256

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _hex(value: int) -> str:
    return f"{value:032x}"


_MAPPED_LO, _MAPPED_HI = _V4_MAPPED, _V4_MAPPED | 0xFFFFFFFF
"""::ffff:0:0/96, where IPv4 addresses live in the 128-bit space."""


def _spans(net: Network) -> list[tuple[int, int]]:
    """The ranges of the space a network covers. An IPv6 network wider than /96 that holds
    ::ffff:0:0/96 (::/0, ::/64) covers it minus that block: it names IPv6 addresses, and
    must not admit every IPv4 client with them."""
    lo, hi = int(net.network_address), int(net.broadcast_address)
    if net.version == 4:
        return [(lo | _V4_MAPPED, hi | _V4_MAPPED)]
    if not (lo <= _MAPPED_LO and hi >= _MAPPED_HI):
        return [(lo, hi)]
    below = [(lo, _MAPPED_LO - 1)] if lo < _MAPPED_LO else []
    above = [(_MAPPED_HI + 1, hi)] if hi > _MAPPED_HI else []
    return below + above


def parse_allowlist(field: str, cidrs: list[str]) -> list[Network]:
    """Validate CIDRs (a bare address means /32 or /128); raises InvalidField naming the field."""
    if len(cidrs) > MAX_ENTRIES:
        raise InvalidField(field, f"at most {MAX_ENTRIES} entries")
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            raise InvalidField(field, f"{cidr!r} is not an IPv4 or IPv6 CIDR") from None
    return nets


def display(net: Network) -> str:
    """A network as listings show it: an IPv4-mapped one with its IPv4 address
    (::ffff:127.0.0.1/128, not ::ffff:7f00:1/128), as Python 3.13's ipaddress writes it."""
    mapped = net.network_address.ipv4_mapped if net.version == 6 else None
    return str(net) if mapped is None else f"::ffff:{mapped}/{net.prefixlen}"


def pack(nets: list[Network]) -> str:
    """The packed form stored beside the human-readable list."""
    out = []
    for net in nets:
        out += [_hex(lo) + _hex(hi) for lo, hi in _spans(_unmap(net))]
    return "".join(out)


def _unmap(net: Network) -> Network:
    # An IPv6 CIDR inside ::ffff:0:0/96 is an IPv4 network written as IPv6.
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        return ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
    return net


@lru_cache(maxsize=65536)
def ip_hex(address: str) -> str:
    """32 hex digits of a client address; '' when it is not an IP (e.g. a unix socket)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return ""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    value = int(ip)
    return _hex(value | _V4_MAPPED if ip.version == 4 else value)


_V4_HEX_PREFIX = "00000000000000000000ffff"
"""ip_hex of every IPv4 address begins so (it is stored as IPv4-mapped IPv6)."""


def throttled_part(address_hex: str) -> str:
    """What a per-address throttle counts an address (ip_hex) by: IPv4 whole, IPv6 by its
    /64, one subscriber's usual allocation, which would otherwise give one client 2^64
    budgets. An IPv4-mapped address is already its IPv4 (ip_hex)."""
    return address_hex if address_hex.startswith(_V4_HEX_PREFIX) else address_hex[:16]


def allowed(packed: str, address_hex: str) -> bool:
    """Python twin of the script's check, for unit tests and the management API."""
    if not packed:
        return True
    for i in range(0, len(packed), 64):
        if packed[i : i + 32] <= address_hex <= packed[i + 32 : i + 64]:
            return True
    return False
