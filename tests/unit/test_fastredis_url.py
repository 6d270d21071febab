"""FastRedis URL parsing (no server)."""

from __future__ import annotations

import ssl

import pytest

from rotator.store.fast.endpoint import Endpoint, parse_url


def test_plain_url_defaults() -> None:
    assert parse_url("redis://example.org") == Endpoint(host="example.org", port=6379, db=0)


def test_credentials_port_and_db() -> None:
    endpoint = parse_url("redis://alice:p%40ss%2Fword@10.0.0.5:7000/4")

    assert (endpoint.host, endpoint.port, endpoint.db) == ("10.0.0.5", 7000, 4)
    assert (endpoint.username, endpoint.password) == ("alice", "p@ss/word")
    assert endpoint.ssl is None


def test_password_without_user() -> None:
    endpoint = parse_url("redis://:secret@h:1")

    assert (endpoint.username, endpoint.password) == (None, "secret")


def test_address_for_logs_has_no_credentials() -> None:
    assert parse_url("redis://alice:secret@h:1").address == "h:1"


def test_rediss_verifies_by_default() -> None:
    context = parse_url("rediss://h:6380").ssl

    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_rediss_opt_out_of_verification() -> None:
    context = parse_url("rediss://h:6380?ssl_cert_reqs=none").ssl

    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE


def test_unix_socket_with_db() -> None:
    endpoint = parse_url("unix:///run/valkey/valkey.sock?db=2")

    assert (endpoint.unix_path, endpoint.db) == ("/run/valkey/valkey.sock", 2)
    assert endpoint.address == "/run/valkey/valkey.sock"


def test_cluster_peer_keeps_credentials() -> None:
    peer = parse_url("redis://alice:secret@h:1").at("10.0.0.9", 7001)

    assert (peer.host, peer.port, peer.username, peer.password) == (
        "10.0.0.9", 7001, "alice", "secret"
    )  # fmt: skip


@pytest.mark.parametrize(
    "url",
    ["http://h:1", "redis://h:notaport", "redis://h:1/x", "redis://h/-1", "unix://"],
)
def test_bad_urls_are_value_errors(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)
