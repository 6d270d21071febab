"""TLS servers for the tests: a private CA, certificates, and TLS in front of Valkey.

The bundled valkey-server has no TLS support built in, so TLS is terminated by
tests/tlsproxy.py (a child process) in front of plain servers:

- `tls_pki`: a CA, a server certificate for IP 127.0.0.1 and DNS localhost
  ("good"), one for another name only ("wrong"), and a client certificate.
- `tls_valkey`: the session's `valkey` behind three listeners: the good
  certificate, the wrong one, and the good one requiring a client certificate.
- `tls_cluster`: a three-primary cluster of its own whose nodes announce the
  proxies' ports (cluster-announce-port), so CLUSTER SLOTS and MOVED send clients
  to TLS addresses, as a cluster with tls-cluster does; `seed_port` is one more
  listener on node 0 that keeps the good certificate when a test gives the
  announced listeners the wrong one (`announce_wrong_certificates`).

All session-scoped: the cluster costs about a second, once.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rotator.embedded import EmbeddedValkey, die_with_parent, free_port
from tests.cluster import BUS_PORT_OFFSET, ValkeyCluster

GOOD_NAMES = (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"))
WRONG_NAMES = (x509.DNSName("elsewhere.invalid"),)


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Path
    good: tuple[Path, Path]
    """server certificate and key for 127.0.0.1 and localhost"""
    wrong: tuple[Path, Path]
    """server certificate and key for elsewhere.invalid only (same CA)"""
    client: tuple[Path, Path]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(subject: str, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_pki(directory: Path) -> Pki:
    """A CA and the certificates it signs (P-256: quick to make)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyrotator test CA")])
    ca_cert = (
        _builder("keyrotator test CA", ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(name: str, sans: tuple[x509.GeneralName, ...], usage: x509.ObjectIdentifier):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(name, ca_name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_key_pem(key))
        return cert_path, key_path

    return Pki(
        directory=directory,
        ca=ca_path,
        good=issue("good", GOOD_NAMES, ExtendedKeyUsageOID.SERVER_AUTH),
        wrong=issue("wrong", WRONG_NAMES, ExtendedKeyUsageOID.SERVER_AUTH),
        client=issue("client", (), ExtendedKeyUsageOID.CLIENT_AUTH),
    )


class TlsProxy:
    """tests/tlsproxy.py as a child process; see its docstring."""

    def __init__(self, listeners: list[dict[str, Any]]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.tlsproxy", json.dumps({"listeners": listeners})],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        if self._reply() != "ready":
            self.stop()
            raise RuntimeError("the TLS proxy did not start")

    def _reply(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def use_certificate(self, group: str, cert: tuple[Path, Path]) -> None:
        """Later handshakes on `group`'s listeners present `cert` (returns once it holds)."""
        assert self.process.stdin is not None
        command = {"group": group, "cert": str(cert[0]), "key": str(cert[1])}
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        assert self._reply() == "ok"

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _listener(port: int, target: int, cert: tuple[Path, Path], **extra: Any) -> dict[str, Any]:
    return {
        "port": port, "target": ["127.0.0.1", target],
        "cert": str(cert[0]), "key": str(cert[1]), **extra,
    }  # fmt: skip


def rediss(port: int, pki: Pki, host: str = "127.0.0.1", **params: str) -> str:
    """A rediss:// URL trusting the test CA, plus any other query parameters."""
    query = "&".join(f"{k}={v}" for k, v in {"ssl_ca_certs": str(pki.ca), **params}.items())
    return f"rediss://{host}:{port}/0?{query}"


@dataclass
class TlsValkey:
    pki: Pki
    good_port: int
    wrong_port: int
    mtls_port: int


@pytest.fixture(scope="session")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_valkey(valkey: EmbeddedValkey, tls_pki: Pki) -> Iterator[TlsValkey]:
    ports = TlsValkey(tls_pki, free_port(), free_port(), free_port())
    proxy = TlsProxy(
        [
            _listener(ports.good_port, valkey.port, tls_pki.good),
            _listener(ports.wrong_port, valkey.port, tls_pki.wrong),
            _listener(ports.mtls_port, valkey.port, tls_pki.good, client_ca=str(tls_pki.ca)),
        ]
    )
    yield ports
    proxy.stop()


class TlsCluster(ValkeyCluster):
    """A ValkeyCluster whose nodes announce TLS proxy ports (see the module docstring)."""

    def __init__(self, base_dir: Path, pki: Pki) -> None:
        self.pki = pki
        self.announced: dict[int, int] = {}  # node port -> its TLS port
        self.seed_port = 0
        super().__init__(base_dir, node_args=self._announce)
        self.proxy: TlsProxy | None = None

    def _announce(self, port: int) -> tuple[str, ...]:
        taken = {p for known in self.announced.items() for p in known}
        tls_port = free_port()
        while tls_port in taken or tls_port == port + BUS_PORT_OFFSET:
            tls_port = free_port()
        self.announced[port] = tls_port
        return (
            "--cluster-announce-port", str(tls_port),
            "--cluster-announce-bus-port", str(port + BUS_PORT_OFFSET),
        )  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> None:
        self.seed_port = free_port()
        self.proxy = TlsProxy(
            [
                *(
                    _listener(tls, port, self.pki.good, group="announced")
                    for port, tls in self.announced.items()
                ),
                _listener(self.seed_port, self.nodes[0].port, self.pki.good, group="seed"),
            ]
        )
        super().start(timeout_s)

    def tls_url(self, host: str = "127.0.0.1", **params: str) -> str:
        """rediss:// of node 0's announced address, trusting the test CA."""
        return rediss(self.announced[self.nodes[0].port], self.pki, host, **params)

    @contextlib.contextmanager
    def announce_wrong_certificates(self) -> Iterator[None]:
        """Every announced address presents a certificate for another name meanwhile."""
        assert self.proxy is not None
        self.proxy.use_certificate("announced", self.pki.wrong)
        try:
            yield
        finally:
            self.proxy.use_certificate("announced", self.pki.good)

    def stop(self) -> None:
        super().stop()
        if self.proxy is not None:
            self.proxy.stop()


@pytest.fixture(scope="session")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, tls_pki: Pki) -> Iterator[TlsCluster]:
    """One TLS cluster per test session; call .flush() for a clean one."""
    cluster = TlsCluster(tmp_path_factory.mktemp("tls-cluster"), tls_pki)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
