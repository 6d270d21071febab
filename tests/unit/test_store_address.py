"""The one reading of a store URL (rotator/store/address.py), and how each client is fed."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from rotator.settings import Settings, SettingsError
from rotator.store.address import QUERY_PARAMETERS, AddressError, StoreAddress, TlsOptions
from rotator.store.fast.endpoint import Endpoint, parse_url
from workers.settings import queue_redis_settings

parse = StoreAddress.parse


# --- what a URL says ----------------------------------------------------------------------
def test_a_plain_url_and_its_defaults() -> None:
    assert parse("redis://example.org") == StoreAddress(
        scheme="redis", host="example.org", port=6379, db=0
    )
    assert parse("redis://") == StoreAddress(scheme="redis", host="127.0.0.1")


def test_credentials_are_percent_decoded_port_and_db_read() -> None:
    address = parse("redis://alice:p%40ss%2Fw%3Fo%23rd@10.0.0.5:7000/4")

    assert (address.host, address.port, address.db) == ("10.0.0.5", 7000, 4)
    assert (address.username, address.password) == ("alice", "p@ss/w?o#rd")


def test_a_password_without_a_user_name() -> None:
    assert (parse("redis://:secret@h").username, parse("redis://:secret@h").password) == (
        None,
        "secret",
    )


def test_the_database_as_a_parameter() -> None:
    assert parse("redis://h?db=3").db == 3
    assert parse("redis://h/").db == 0


def test_ipv6_hosts() -> None:
    address = parse("rediss://[::1]:6380")

    assert (address.host, address.port, address.location) == ("::1", 6380, "[::1]:6380")


def test_a_unix_socket() -> None:
    address = parse("unix://:pw@/run/valkey/valkey.sock?db=2")

    assert (address.unix_path, address.db, address.password) == ("/run/valkey/valkey.sock", 2, "pw")
    assert address.tls is None and address.location == "/run/valkey/valkey.sock"


def test_rediss_checks_the_chain_and_the_name_by_default() -> None:
    tls = parse("rediss://h:6380").tls

    assert tls == TlsOptions(verify_certificate=True, check_hostname=True)
    context = tls.context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl_ca_certs=/etc/ca%20dir/ca.pem", TlsOptions(ca_file="/etc/ca dir/ca.pem")),
        ("ssl_cert_reqs=required", TlsOptions()),
        ("ssl_cert_reqs=none", TlsOptions(verify_certificate=False, check_hostname=False)),
        ("ssl_cert_reqs=NONE", TlsOptions(verify_certificate=False, check_hostname=False)),
        ("ssl_check_hostname=false", TlsOptions(check_hostname=False)),
        ("ssl_check_hostname=0", TlsOptions(check_hostname=False)),
        ("ssl_check_hostname=true", TlsOptions()),
        ("ssl_cert_reqs=none&ssl_check_hostname=false", TlsOptions(verify_certificate=False,
                                                                   check_hostname=False)),
        ("ssl_certfile=/c.pem&ssl_keyfile=/c.key", TlsOptions(cert_file="/c.pem",
                                                              key_file="/c.key")),
        ("SSL_CA_CERTS=/ca.pem", TlsOptions(ca_file="/ca.pem")),
    ],
)  # fmt: skip
def test_every_tls_parameter(query: str, expected: TlsOptions) -> None:
    assert parse(f"rediss://h?{query}").tls == expected


def test_the_documented_parameters_are_all_read() -> None:
    assert set(QUERY_PARAMETERS) == {
        "db", "ssl_ca_certs", "ssl_cert_reqs", "ssl_check_hostname", "ssl_certfile",
        "ssl_keyfile",
    }  # fmt: skip


def test_the_opt_outs_make_contexts_that_check_less() -> None:
    no_name = parse("rediss://h?ssl_check_hostname=false").tls.context()
    nothing = parse("rediss://h?ssl_cert_reqs=none").tls.context()

    assert (no_name.verify_mode, no_name.check_hostname) == (ssl.CERT_REQUIRED, False)
    assert (nothing.verify_mode, nothing.check_hostname) == (ssl.CERT_NONE, False)


# --- what is refused, and that no message shows the password --------------------------------
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("rediss://h?ssl_ca_cert=/ca.pem",
         "unknown parameter ssl_ca_cert (did you mean ssl_ca_certs?)"),
        ("redis://h?timeout=1&x=2", "unknown parameters timeout, x;"),
        ("redis://h?socket_timeout=5", "unknown parameter socket_timeout"),
        ("http://h:1", "must start with redis://, rediss:// or unix://"),
        ("h:6379", "must start with"),
        ("", "empty URL"),
        ("redis://h:notaport", "bad host or port"),
        ("redis://h:70000", "bad host or port"),
        ("redis://h:0", "port 0"),
        ("redis://h/x", "database must be a number"),
        ("redis://h/-1", "database must be a number"),
        ("redis://h/1/2", "database must be a number"),
        ("redis://h?db=²", "database must be a number"),
        ("redis://h/1?db=1", "given twice"),
        ("redis://h?db=1&db=2", "db is given twice"),
        ("rediss://h?ssl_ca_certs=", "ssl_ca_certs has no value"),
        ("rediss://h?ssl_ca_certs", "ssl_ca_certs has no value"),
        ("rediss://h?ssl_cert_reqs=optional", "ssl_cert_reqs must be required or none"),
        ("rediss://h?ssl_check_hostname=maybe", "ssl_check_hostname must be true or false"),
        ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "needs ssl_cert_reqs=required"),
        ("rediss://h?ssl_certfile=/c.pem", "ssl_certfile and ssl_keyfile go together"),
        ("rediss://h?ssl_keyfile=/c.key", "go together"),
        ("redis://h?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs a rediss:// URL"),
        ("unix:///s?ssl_check_hostname=false", "needs a rediss:// URL"),
        ("redis://h?a=1&&b=2", "malformed query"),
        ("redis://h#top", "no #fragment"),
        ("redis://:12?cd@h", "an '@' after the host"),
        ("rediss://h?ssl_ca_certs=/a@b.pem", "an '@' in a parameter (%40)"),
        ("redis://alice@h", "a user name needs a password"),
        ("unix://", "needs a socket path"),
        ("unix://host/s.sock", "has no host"),
    ],
)  # fmt: skip
def test_bad_urls_are_refused_saying_why(url: str, problem: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse(url)

    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("char", ["?", "#", "/", "@", "[", "]", ":", "%", "&", "=", " ", "\\"])
@pytest.mark.parametrize(
    "template",
    [
        "redis://:pw{c}secretpart@h:6379/0",
        "rediss://alice:pw{c}secretpart@h:6380/0?ssl_ca_cert=/x",
        "redis://:pw{c}secretpart@h:bad",
        "unix://:pw{c}secretpart@/run/s.sock?db=x",
    ],
)
def test_no_message_holds_any_part_of_a_password(template: str, char: str) -> None:
    """Unencoded special characters move parts of a password into the host, the path, the
    query or the fragment: whatever the parser makes of it, its messages leave them out."""
    url = template.format(c=char)
    try:
        address = parse(url)
    except AddressError as exc:
        assert "secretpart" not in str(exc)
        assert "pw" not in str(exc).replace("password", "")
    else:
        assert "secretpart" not in address.display + repr(address) + address.location


def test_repr_and_display_mask_the_password() -> None:
    address = parse("rediss://alice:hunter2@h:6380/1?ssl_check_hostname=false")

    assert address.display == "rediss://alice:***@h:6380/1"
    assert "hunter2" not in repr(address) and "hunter2" not in repr(Endpoint.of(address))
    assert parse("unix:///s.sock?db=2").display == "unix:///s.sock?db=2"


# --- one reading, every client --------------------------------------------------------------
def test_redis_py_is_given_every_tls_option_explicitly() -> None:
    """redis-py 5 defaults ssl_check_hostname to False: it must never be left to it."""
    url = "rediss://u:p@h:6380/2?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/c.key"

    assert parse(url).redis_kwargs() == {
        "host": "h", "port": 6380, "db": 2, "username": "u", "password": "p",
        "ssl": True, "ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "required",
        "ssl_check_hostname": True, "ssl_certfile": "/c.pem", "ssl_keyfile": "/c.key",
    }  # fmt: skip
    opted_out = parse("rediss://h?ssl_cert_reqs=none").redis_kwargs()
    assert (opted_out["ssl_cert_reqs"], opted_out["ssl_check_hostname"]) == ("none", False)


def test_redis_py_kwargs_for_a_socket_and_for_a_cluster() -> None:
    assert parse("unix:///s.sock?db=1").redis_kwargs() == {
        "unix_socket_path": "/s.sock", "db": 1, "username": None, "password": None,
    }  # fmt: skip
    assert "db" not in parse("rediss://h").redis_kwargs(cluster=True)
    with pytest.raises(AddressError, match="only database 0"):
        parse("redis://h/1").redis_kwargs(cluster=True)
    with pytest.raises(AddressError, match="redis:// or rediss://"):
        parse("unix:///s.sock").redis_kwargs(cluster=True)


def test_fastredis_gets_the_same_checks(tmp_path: Path) -> None:
    endpoint = parse_url("rediss://alice:pw@h:6380/3?ssl_check_hostname=false")

    assert (endpoint.host, endpoint.port, endpoint.db, endpoint.password) == ("h", 6380, 3, "pw")
    assert endpoint.ssl is not None and endpoint.ssl.check_hostname is False
    assert endpoint.ssl.verify_mode == ssl.CERT_REQUIRED
    peer = endpoint.at("10.0.0.9", 7001)
    assert (peer.host, peer.port, peer.ssl) == ("10.0.0.9", 7001, endpoint.ssl)


def test_arq_gets_every_field(tmp_path: Path) -> None:
    """Before: arq's from_dsn dropped the TLS parameters and turned the name check off."""
    url = "rediss://u:p@h:6380/2?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/c.key"
    arq = queue_redis_settings(Settings(redis_url="redis://data", queue_url=url))

    assert (arq.host, arq.port, arq.database, arq.username, arq.password) == (
        "h", 6380, 2, "u", "p"
    )  # fmt: skip
    assert (arq.ssl, arq.ssl_ca_certs, arq.ssl_cert_reqs, arq.ssl_check_hostname) == (
        True, "/ca.pem", "required", True,
    )  # fmt: skip
    assert (arq.ssl_certfile, arq.ssl_keyfile) == ("/c.pem", "/c.key")
    plain = queue_redis_settings(Settings(redis_url="unix:///s.sock?db=4"))
    assert (plain.unix_socket_path, plain.database, plain.ssl) == ("/s.sock", 4, False)


# --- at start: one line naming the variable ------------------------------------------------
@pytest.mark.parametrize("name", ["REDIS_URL", "QUEUE_URL"])
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("rediss://:hunter2@h?ssl_ca_cert=/ca.pem", "unknown parameter ssl_ca_cert"),
        ("rediss://:hunter2@h?ssl_ca_certs=/no/such/ca.pem",
         "cannot load the TLS files (ssl_ca_certs=/no/such/ca.pem): No such file"),
        ("redis://:hunter2@h?ssl_check_hostname=false", "needs a rediss:// URL"),
    ],
)  # fmt: skip
def test_a_bad_store_url_names_its_variable(
    name: str, url: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({f"ROTATOR_{name}": url}, data_dir=tmp_path)

    message = str(caught.value)
    assert message.startswith(f"ROTATOR_{name}: ") and problem in message
    assert "hunter2" not in message and "\n" not in message


def test_a_tls_file_that_is_not_pem_is_refused_at_start(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")

    with pytest.raises(SettingsError, match=r"ROTATOR_REDIS_URL: cannot load the TLS files"):
        Settings.from_env({"ROTATOR_REDIS_URL": f"rediss://h?ssl_ca_certs={bogus}"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [("unix:///s.sock", "redis:// or rediss://"), ("redis://h:7000/2", "only database 0")],
)
def test_a_cluster_url_is_a_host_and_database_0(url: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"ROTATOR_REDIS_URL": url, "ROTATOR_REDIS_CLUSTER": "1"}, data_dir=tmp_path
        )

    assert str(caught.value).startswith("ROTATOR_REDIS_URL: ") and problem in str(caught.value)
