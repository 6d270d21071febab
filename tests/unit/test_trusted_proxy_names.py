"""ROTATOR_TRUSTED_PROXIES may name hosts: parsed, then resolved now and in the background.

docker-compose.yml trusts its nginx by container name (no fixed subnet); nginx starts
after the API, and may come back with another address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from types import SimpleNamespace

import pytest

from rotator.api.proxies import ProxyNames
from rotator.domain.clientip import ClientIpResolver
from rotator.settings import Settings, SettingsError

CIDR = ipaddress.ip_network("10.9.0.0/16")


def test_names_and_networks_mix():
    s = Settings.from_env({"ROTATOR_TRUSTED_PROXIES": "nginx, 10.9.0.0/16, Proxy.Internal."})
    assert s.trusted_networks == (CIDR,)
    assert s.trusted_hosts == ("nginx", "proxy.internal.")


@pytest.mark.parametrize("bad", ["10.0.0.300", "a_b", "-nginx", "nginx-", "x" * 64, "1.2.3"])
def test_what_is_neither_a_network_nor_a_name_is_refused(bad):
    with pytest.raises(SettingsError, match=r"ROTATOR_TRUSTED_PROXIES: .*nor a host name"):
        Settings.from_env({"ROTATOR_TRUSTED_PROXIES": bad})


def state() -> SimpleNamespace:
    return SimpleNamespace(client_ip=ClientIpResolver((CIDR,)))


async def test_a_name_is_trusted_from_the_start_when_it_resolves():
    s = state()
    names = ProxyNames(s, (CIDR,), ("localhost",))
    await names.start()
    try:
        assert s.client_ip.trusts("127.0.0.1")
        assert s.client_ip.trusts("10.9.1.1")  # the networks stay
        assert s.client_ip.resolve("127.0.0.1", "203.0.113.5") == "203.0.113.5"
        assert not s.client_ip.trusts("198.51.100.1")
    finally:
        await names.stop()


async def test_a_name_that_does_not_resolve_yet_is_retried_and_said_once(caplog):
    s = state()
    before = s.client_ip
    names = ProxyNames(s, (CIDR,), ("no-such-proxy.invalid",), retry_s=0.01)
    with caplog.at_level(logging.INFO, logger="rotator.api"):
        await names.start()
        await asyncio.sleep(0.1)  # several retries
        await names.stop()
    assert s.client_ip is before  # nothing more trusted
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("trusted proxy no-such-proxy.invalid does not")


async def test_a_new_address_replaces_the_old_and_a_failed_lookup_keeps_it(monkeypatch):
    answers = iter(["172.18.0.5", OSError("temporary failure"), "172.18.0.9"])

    async def getaddrinfo(host, port, *, type=0, **_):  # the loop's public method, faked
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return [(socket.AF_INET, type, 6, "", (answer, 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    s = state()
    names = ProxyNames(s, (CIDR,), ("nginx",))
    await names.refresh()
    assert s.client_ip.trusts("172.18.0.5")
    await names.refresh()  # the lookup failed: still trusted
    assert s.client_ip.trusts("172.18.0.5")
    await names.refresh()  # recreated with a new address
    assert s.client_ip.trusts("172.18.0.9") and not s.client_ip.trusts("172.18.0.5")
    assert s.client_ip.trusts("10.9.0.1")
