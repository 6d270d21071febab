"""SSRF guard: which addresses count as public, and which webhook URLs are refused.

Only IP literals and `localhost` are resolved: the test machine has no network.
"""

from __future__ import annotations

import ipaddress

import pytest

from rotator.domain.errors import InvalidField
from rotator.netguard import check_webhook_url, is_public_address, redact_webhook_url

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8"]
NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "::1",                    # loopback
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "fc00::1",  # private
    "100.64.0.1",                                        # carrier-grade NAT
    "169.254.169.254", "fe80::1", "fe80::1%eth0",        # link-local (cloud metadata)
    "224.0.0.1", "239.1.2.3", "ff02::1",                 # multicast
    "0.0.0.0", "::",                                     # unspecified
    "240.0.0.1", "255.255.255.255",                      # reserved, broadcast
    "192.0.2.1", "2001:db8::1",                          # documentation
    "fec0::1",                                           # IPv6 site-local
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",               # IPv4-mapped
    "64:ff9b::7f00:1", "2002:7f00:1::1",                 # NAT64 / 6to4 wrapping loopback
    "not-an-ip",
]  # fmt: skip


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_are_public(ip: str) -> None:
    assert is_public_address(ip)


@pytest.mark.parametrize("ip", NOT_PUBLIC)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert not is_public_address(ip)


def test_accepts_address_objects() -> None:
    assert is_public_address(ipaddress.ip_address("8.8.8.8"))
    assert not is_public_address(ipaddress.ip_address("10.0.0.1"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "https://[::1]/hook",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:192.168.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as a decimal integer: the resolver's answer is checked
        "http://0/",
    ],
)
async def test_private_and_loopback_urls_refused_without_flag(url: str) -> None:
    with pytest.raises(InvalidField) as info:
        await check_webhook_url(url, allow_private=False)
    assert info.value.field == "webhook_url"
    assert "does not resolve to a public address" in info.value.message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://localhost:9000/hook", "http://10.0.0.5/"]
)
async def test_private_urls_allowed_with_flag(url: str) -> None:
    await check_webhook_url(url, allow_private=True)


async def test_public_ip_literal_accepted() -> None:
    await check_webhook_url("https://8.8.8.8/hook", allow_private=False)
    await check_webhook_url("http://[2606:4700:4700::1111]:8443/x", allow_private=False)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://8.8.8.8/x", "http"),
        ("file:///etc/passwd", "http"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "http"),
        ("8.8.8.8/hook", "http"),
        ("http:///nohost", "no host"),
        ("http://8.8.8.8:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_malformed_urls_refused_even_with_flag(
    url: str, problem: str, allow_private: bool
) -> None:
    with pytest.raises(InvalidField) as info:
        await check_webhook_url(url, allow_private=allow_private)
    assert info.value.field == "webhook_url"
    assert problem in info.value.message


async def test_unresolvable_host_refused() -> None:
    # .invalid is reserved (RFC 2606): it never resolves, with or without a network
    with pytest.raises(InvalidField) as info:
        await check_webhook_url("http://nothing.invalid/", allow_private=False)
    assert "resolve" in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://user:password@8.8.8.8/hook",
        "https://token@8.8.8.8/hook",
        "http://:pw@8.8.8.8/",
        "http://a@b@8.8.8.8/",
        "http://user:p%40ss@127.0.0.1:9000/",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_credentials_in_urls_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(InvalidField) as info:
        await check_webhook_url(url, allow_private=allow_private)
    assert info.value.field == "webhook_url"
    assert "credentials" in info.value.message and "webhook_secret" in info.value.message


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("http://user:password@h.example/x?q=1", "http://user:***@h.example/x?q=1"),
        ("https://s3cr3t-token@h.example:8443/", "https://***@h.example:8443/"),
        ("http://a:b@c@h.example/", "http://a:***@h.example/"),
        ("http://h.example/path@not-userinfo", "http://h.example/path@not-userinfo"),
        ("http://h.example/", "http://h.example/"),
    ],
)
def test_redact_webhook_url(stored: str, shown: str) -> None:
    assert redact_webhook_url(stored) == shown


async def test_a_refused_name_is_not_answered_with_its_address() -> None:
    # what a name resolves to inside the operator's network is not the tenant's to learn,
    # nor whether it resolves there at all: an internal name and a missing one read alike
    with pytest.raises(InvalidField) as internal:
        await check_webhook_url("http://localhost:9000/hook", allow_private=False)
    with pytest.raises(InvalidField) as missing:
        await check_webhook_url("http://no-such-host.invalid/hook", allow_private=False)
    assert internal.value.problem.replace("'localhost'", "H") == missing.value.problem.replace(
        "'no-such-host.invalid'", "H"
    )
    assert "does not resolve to a public address" in internal.value.message
    assert "127.0.0.1" not in internal.value.message and "::1" not in internal.value.message
