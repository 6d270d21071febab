import ipaddress

from rotator.domain.clientip import ClientIpResolver


def resolver(*cidrs: str) -> ClientIpResolver:
    return ClientIpResolver([ipaddress.ip_network(c) for c in cidrs])


def test_no_trusted_proxies_means_the_peer():
    assert resolver().resolve("192.0.2.1", "203.0.113.5") == "192.0.2.1"


def test_right_most_untrusted_hop():
    r = resolver("10.0.0.0/8", "::1/128")
    assert r.resolve("10.0.0.2", "203.0.113.5, 10.0.0.9") == "203.0.113.5"
    assert r.resolve("::1", "1.1.1.1, 203.0.113.5") == "203.0.113.5"
    assert r.resolve("::ffff:10.0.0.2", "2001:db8::7") == "2001:db8::7"


def test_untrusted_peer_header_ignored():
    assert resolver("10.0.0.0/8").resolve("192.0.2.1", "203.0.113.5") == "192.0.2.1"


def test_all_hops_trusted_or_garbage():
    r = resolver("10.0.0.0/8")
    assert r.resolve("10.0.0.2", "10.0.0.3, 10.0.0.4") == "10.0.0.3"
    assert r.resolve("10.0.0.2", " , ") == "10.0.0.2"
    assert r.resolve("10.0.0.2", "not-an-ip") == "not-an-ip"  # refused by any allowlist


def test_joined_header_lines_are_one_list():
    # two X-Forwarded-For lines arrive joined in order (rotator/api/delivery.py)
    r = resolver("127.0.0.1/32")
    assert r.resolve("127.0.0.1", "10.1.2.3,8.8.8.8") == "8.8.8.8"
    assert r.resolve("127.0.0.1", "10.1.2.3, 8.8.8.8,127.0.0.1") == "8.8.8.8"


def test_a_hop_written_with_its_port_is_its_address():
    # some proxies (Azure Application Gateway) write the client's port too
    r = resolver("10.0.0.0/8")
    assert r.resolve("10.0.0.2", "203.0.113.9:50001") == "203.0.113.9"
    assert r.resolve("10.0.0.2", "[2001:db8::1]:443") == "2001:db8::1"
    assert r.resolve("10.0.0.2", "[2001:db8::1]") == "2001:db8::1"
    assert r.resolve("10.0.0.2", "203.0.113.9, 10.0.0.7:8080") == "203.0.113.9"
    assert r.resolve("10.0.0.2", "2001:db8::1") == "2001:db8::1"  # colons, no port
