"""Who may fetch a key: the token, the allowlists and the demo throttle, in that order.

Each is checked before the service is looked at, so a request for an unknown service with a
bad token is `403 invalid token` and a demo tenant's requests for unknown services use up its
throttle too.
"""

from __future__ import annotations

import ipaddress

from rotator.domain.reference.state import (
    Address,
    Credential,
    ModelApp,
    ModelTenant,
    Network,
)


def token_ok(tenant: ModelTenant, app: ModelApp | None, credential: Credential) -> bool:
    """A token works when it is the latest one issued for its tenant or app, the tenant is not
    suspended (which stops its app tokens too), and for an app token the app exists and is not
    suspended. A token reissued while the tenant is suspended works once it is resumed."""
    if tenant.suspended:
        return False
    if credential.app_id is None:
        return credential.generation == tenant.client_generation
    return app is not None and not app.suspended and credential.generation == app.token_generation


def address(text: str) -> Address | None:
    """A client address, an IPv4-mapped IPv6 address read as the IPv4 address it carries;
    None when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def network(cidr: str) -> Network:
    """A CIDR of an allowlist; an IPv6 CIDR inside ::ffff:0:0/96 is the IPv4 one it spells."""
    net = ipaddress.ip_network(cidr, strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
    return net


def allowed(allowlist: list[Network], client: Address | None) -> bool:
    """An empty allowlist allows everyone; a non-empty one only the addresses in one of its
    networks (an unknown address is in none)."""
    if not allowlist:
        return True
    return client is not None and any(
        client.version == net.version and client in net for net in allowlist
    )


class Throttle:
    """The demo tenants' per-address rate: GCRA with an emission interval and a burst.

    Each allowed request moves the address's theoretical arrival time (TAT) one interval
    later (from now, if it lay in the past); a request is refused while the TAT it would set
    is more than `burst` intervals ahead of now, and told how long until it is not. A refused
    request changes nothing. Addresses are told apart as the allowlists see them (an IPv4
    address and its IPv4-mapped form are one)."""

    def __init__(self, interval_ms: int, burst: int) -> None:
        self.interval_ms = interval_ms
        self.burst = burst
        self.tat_ms: dict[Address | None, int] = {}

    def admit(self, client: Address | None, now_ms: int) -> int:
        """0 when the request may go on (and it is counted), else the ms to wait."""
        tat = max(self.tat_ms.get(client, now_ms), now_ms)
        new_tat = tat + self.interval_ms
        allow_at = new_tat - self.interval_ms * self.burst
        if now_ms < allow_at:
            return allow_at - now_ms
        self.tat_ms[client] = new_tat
        return 0
