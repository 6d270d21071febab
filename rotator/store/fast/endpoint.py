"""One server as FastRedis dials it, made from a parsed store URL (rotator/store/address.py).

The URL is read by the one parser every client shares; this adds what a raw
asyncio connection needs on top of it: the TLS context, built once per client
and shared by every cluster peer (`at`), with the same checks redis-py makes.
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass, field

from rotator.store.address import DEFAULT_HOST, DEFAULT_PORT, StoreAddress


@dataclass(frozen=True)
class Endpoint:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    ssl: ssl.SSLContext | None = None

    @classmethod
    def of(cls, address: StoreAddress) -> Endpoint:
        """Raises OSError or ssl.SSLError when a TLS file named by the URL cannot be loaded
        (settings validation has checked them at start)."""
        return cls(
            host=address.host,
            port=address.port,
            unix_path=address.unix_path,
            username=address.username,
            password=address.password,
            db=address.db,
            ssl=address.tls.context() if address.tls is not None else None,
        )

    def at(self, host: str, port: int) -> Endpoint:
        """The same credentials and TLS settings on another node (cluster peers, at the
        address the cluster announces: with hostname checking, their certificates must
        name that address, as for redis-py)."""
        return dataclasses.replace(self, host=host, port=port, unix_path=None)

    @property
    def address(self) -> str:
        """For logs: never includes credentials."""
        return self.unix_path or f"{self.host}:{self.port}"


def parse_url(url: str | StoreAddress) -> Endpoint:
    """An Endpoint for a store URL (or an address already parsed); AddressError (a
    ValueError) names what is wrong with the URL."""
    address = url if isinstance(url, StoreAddress) else StoreAddress.parse(url)
    return Endpoint.of(address)
