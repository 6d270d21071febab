"""Trusted proxies given by name in ROTATOR_TRUSTED_PROXIES, resolved in the background.

In docker compose the proxy is a container whose address the network assigns when it
starts (no fixed subnet), and it starts after the API (nginx waits for the API to be
healthy). So a name is resolved when the process starts, again every second until it
resolves, then every `refresh_s`: the proxy's X-Forwarded-For (and X-Request-ID) is
honoured from the first resolution on, and a proxy recreated with a new address is
followed. A name that stops resolving keeps its last addresses (a DNS hiccup must not
turn every client into the proxy's address); only a new answer replaces them.

The resolver the handlers read (`AppState.client_ip`) is replaced as a whole: a handler
reads it once per request, so it never sees half of a change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence

from rotator.api.state import AppState
from rotator.cancel import Background
from rotator.domain.clientip import ClientIpResolver, Network
from rotator.tuning import PROXY_NAMES_REFRESH_S, PROXY_NAMES_RETRY_S

log = logging.getLogger("rotator.api")


class ProxyNames(Background):
    def __init__(
        self,
        state: AppState,
        networks: Sequence[Network],
        hosts: Sequence[str],
        *,
        refresh_s: float = PROXY_NAMES_REFRESH_S,
        retry_s: float = PROXY_NAMES_RETRY_S,
    ) -> None:
        self.state = state
        self.networks = tuple(networks)
        self.hosts = tuple(hosts)
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self.addresses: dict[str, frozenset[Network]] = {}
        """Each name's last answer (absent until it first resolves)."""
        self._said_unresolved: set[str] = set()

    async def start(self) -> None:
        """Resolve once now (so a proxy already up is trusted from the first request), then
        keep resolving in the background. Nothing to do without names."""
        if not self.hosts:
            return
        await self.refresh()
        self.launch("trusted-proxy-names")

    async def _run(self) -> None:
        while True:
            pending = len(self.addresses) < len(self.hosts)
            await asyncio.sleep(self.retry_s if pending else self.refresh_s)
            await self.refresh()

    async def refresh(self) -> None:
        """Look every name up; install a new resolver when an answer changed."""
        changed = False
        for host in self.hosts:
            try:
                found = await _lookup(host)
            except OSError as exc:
                if host not in self.addresses and host not in self._said_unresolved:
                    self._said_unresolved.add(host)  # once: it is retried every second
                    log.info(
                        "trusted proxy %s does not resolve yet (%s); its X-Forwarded-For is "
                        "not honoured until it does", host, exc,
                    )  # fmt: skip
                continue
            if found != self.addresses.get(host):
                self.addresses[host] = found
                changed = True
                log.info("trusted proxy %s is %s", host, ", ".join(sorted(str(n) for n in found)))
        if changed:
            resolved = {net for nets in self.addresses.values() for net in nets}
            self.state.client_ip = ClientIpResolver((*self.networks, *sorted(resolved, key=str)))


async def _lookup(host: str) -> frozenset[Network]:
    """Every address `host` resolves to, each as a one-address network."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    found = set()
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        found.add(ipaddress.ip_network(address))
    if not found:
        raise OSError(f"no address for {host}")
    return frozenset(found)
