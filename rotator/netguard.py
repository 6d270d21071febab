"""SSRF guard for webhook URLs: only public, globally routable addresses, unless allowed.

Checked twice: when a tenant sets `webhook_url` (`check_webhook_url`, every address
its host resolves to) and when a worker connects (`is_public_address` on the very
address it is about to connect to), because DNS may answer differently the second
time (DNS rebinding). `ROTATOR_WEBHOOK_ALLOW_PRIVATE=1` lifts both checks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from rotator.domain.errors import InvalidField
from rotator.tuning import RESOLVE_TIMEOUT_S

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: str | IPAddress) -> bool:
    """True when `ip` is a global unicast address (not loopback, private, link-local, ...)."""
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # a wrapped private IPv4 reaches the private host; judge the inner address
            return is_public_address(embedded)
    # is_global alone lets multicast (and IPv6 site-local) through; check each class too
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_private
        and not ip.is_reserved
        and not ip.is_unspecified
        and not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def split_webhook_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; InvalidField when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidField("webhook_url", f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidField("webhook_url", "must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise InvalidField("webhook_url", "has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


def redact_webhook_url(url: str) -> str:
    """A stored webhook URL fit to show: credentials (which URLs stored before they were
    refused may hold) replaced by `***`, the user name kept only beside a password."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))


async def resolve(host: str, port: int, *, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[str]:
    """Every address `host` resolves to (TCP), in resolver order, without duplicates.

    Raises OSError when the name does not resolve and TimeoutError after `timeout_s`.
    """
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=timeout_s
    )
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def check_webhook_url(
    url: str, *, allow_private: bool, timeout_s: float = RESOLVE_TIMEOUT_S
) -> None:
    """Refuse (InvalidField "webhook_url") a URL that is not http(s), holds credentials or
    reaches a non-public host.

    Every resolved address must be public: one private answer among public ones
    would let a rebinding resolver pick it later.
    """
    if any(ch.isspace() for ch in url):
        raise InvalidField("webhook_url", "must not contain spaces or line breaks")
    _scheme, host, port = split_webhook_url(url)
    if "@" in urlsplit(url).netloc:
        # credentials in the URL would be stored, shown and logged in clear, while the
        # signing secret is sealed and is what a receiver should check. Only new URLs are
        # refused: one stored by an earlier version is still delivered to (the worker
        # checks addresses with split_webhook_url) and shown redacted
        raise InvalidField(
            "webhook_url",
            "must not contain credentials (user:password@); receivers authenticate "
            "deliveries by their signature: use webhook_secret",
        )
    if allow_private:
        return
    # One answer for a name that does not resolve and one that resolves inside: which
    # names exist in the operator's network is the operator's to know (a map of it, one
    # probe at a time, otherwise), and so are their addresses.
    not_public = InvalidField(
        "webhook_url",
        f"host {host!r} does not resolve to a public address; only the operator can allow "
        "private receivers (ROTATOR_WEBHOOK_ALLOW_PRIVATE=1)",
    )
    try:
        addresses = await resolve(host, port, timeout_s=timeout_s)
    except TimeoutError:
        raise InvalidField("webhook_url", f"host {host!r} did not resolve in time") from None
    except (OSError, UnicodeError):
        raise not_public from None
    if not addresses or not all(is_public_address(address) for address in addresses):
        raise not_public
