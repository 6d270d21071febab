"""The client address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy.

With a trusted peer the header is read right to left, skipping trusted proxies;
the first untrusted address is the client (everything left of it could be forged
by the client itself). Several header lines are one list: the caller joins them in
order with commas (RFC 9110 §5.3), so a line a proxy appended after the client's
own is read too. Results are cached: a service behind a load balancer sees
the same few (peer, header) pairs over and over.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientIpResolver:
    def __init__(self, trusted: Sequence[Network]) -> None:
        self.trusted = tuple(trusted)
        self.resolve = lru_cache(maxsize=65536)(self._resolve)
        self.trusts = lru_cache(maxsize=1024)(self._is_trusted)
        """Whether a peer is a trusted proxy (whose X-Request-ID is honoured too)."""

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted)

    def _resolve(self, peer: str, forwarded_for: str | None) -> str:
        if not self.trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [_without_port(h.strip()) for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        # every hop is a trusted proxy: the left-most one is the closest we know to the client
        return hops[0] if hops else peer


def _without_port(hop: str) -> str:
    """The address of a hop some proxies write with its port (`203.0.113.9:50001`,
    `[2001:db8::1]:443`), so that its port does not make it another client."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:  # an IPv6 address has at least two
        return hop.partition(":")[0]
    return hop
