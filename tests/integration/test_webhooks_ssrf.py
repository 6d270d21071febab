"""SSRF guard at delivery time: the address actually connected to is the one checked."""

from __future__ import annotations

import dataclasses
import datetime
import ssl

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotator.cli.webhook_listen import Receiver
from tests.integration.webhook_support import deliver_all, log_of, record_event, webhook_tenant
from workers.webhook_client import DeliveryFailed, GuardedBackend, WebhookClient


def resolver(answers: dict[str, list[str]]):
    calls: list[str] = []

    async def resolve(host: str, port: int, *, timeout_s: float) -> list[str]:
        calls.append(host)
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the network: records where it was asked to connect, then fails."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append((host, port))
        raise httpcore.ConnectError("no network in tests")


async def test_loopback_refused_at_delivery_without_flag(settings, redis, receiver):
    settings = dataclasses.replace(settings, webhook_allow_private=False, webhook_max_attempts=1)
    t, _ = await webhook_tenant(redis, settings.keyring, receiver.url)
    await record_event(redis, t.tenant, "key.rotated", {"service": "s"})

    await deliver_all(settings, redis)

    assert receiver.received == []  # refused before connecting: not a byte reached it
    (entry,) = await log_of(redis, t.tenant)
    assert entry["outcome"] == "failed"
    assert entry["error"].endswith("resolves to a non-public address")


async def test_rebinding_name_refused_when_it_now_resolves_to_loopback(receiver):
    """A name vetted when set (public then) that resolves to 127.0.0.1 now is refused."""
    resolve = resolver({"hooks.example": ["127.0.0.1"]})
    client = WebhookClient(allow_private=False, timeout_s=2, resolver=resolve)
    try:
        with pytest.raises(
            DeliveryFailed, match=r"hooks\.example' resolves to a non-public address$"
        ):
            await client.post(f"http://hooks.example:{receiver.port}/hook", {}, b"{}")
    finally:
        await client.aclose()
    assert resolve.calls == ["hooks.example"]
    assert receiver.received == []


async def test_connects_to_the_resolved_ip_keeping_the_host_header(receiver):
    resolve = resolver({"hooks.example": ["127.0.0.1"]})
    client = WebhookClient(allow_private=True, timeout_s=2, resolver=resolve)
    try:
        status = await client.post(
            f"http://hooks.example:{receiver.port}/hook?x=1", {"webhook-id": "evt_1"}, b"{}"
        )
    finally:
        await client.aclose()
    assert status == 200
    (request,) = receiver.received
    assert request.headers["host"] == f"hooks.example:{receiver.port}"
    assert request.path == "/hook?x=1"


async def test_every_answer_checked_and_only_checked_addresses_connected():
    inner = RecordingBackend()
    mixed = GuardedBackend(
        allow_private=False,
        resolver=resolver({"h.example": ["93.184.215.14", "10.0.0.7"]}),
        inner=inner,
    )
    with pytest.raises(httpcore.ConnectError, match=r"non-public address$"):
        await mixed.connect_tcp("h.example", 443)
    assert inner.connects == []  # one private answer refuses the name: nothing was dialled

    public = GuardedBackend(
        allow_private=False,
        resolver=resolver({"h.example": ["93.184.215.14", "2606:2800:21f:cb07::1"]}),
        inner=inner,
    )
    with pytest.raises(httpcore.ConnectError, match="no network"):
        await public.connect_tcp("h.example", 443)
    # the checked IP literals are what is dialled, each in turn, never the name
    assert inner.connects == [("93.184.215.14", 443), ("2606:2800:21f:cb07::1", 443)]


@pytest.mark.parametrize(
    "url",
    ["http://[::ffff:127.0.0.1]:{port}/", "http://0x7f000001:{port}/", "http://localhost:{port}/"],
)
async def test_disguised_loopback_refused(receiver, url):
    client = WebhookClient(allow_private=False, timeout_s=2)
    try:
        with pytest.raises(DeliveryFailed, match="non-public"):
            await client.post(url.format(port=receiver.port), {}, b"{}")
    finally:
        await client.aclose()
    assert receiver.received == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///x"])
async def test_non_http_urls_refused(url):
    client = WebhookClient(allow_private=True, timeout_s=2)
    try:
        with pytest.raises(DeliveryFailed, match="invalid webhook URL"):
            await client.post(url, {}, b"{}")
    finally:
        await client.aclose()


def self_signed(tmp_path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a certificate naming `name` only."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_checks_the_url_name_while_connecting_to_the_checked_ip(tmp_path):
    server_ctx, client_ctx = self_signed(tmp_path, "hooks.example")
    receiver = await Receiver(ssl_context=server_ctx).start()
    names = {"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]}
    client = WebhookClient(
        allow_private=True, timeout_s=5, resolver=resolver(names), ssl_context=client_ctx
    )
    try:
        status = await client.post(f"https://hooks.example:{receiver.port}/hook", {}, b"{}")
        assert status == 200
        assert receiver.received[0].headers["host"] == f"hooks.example:{receiver.port}"
        # same IP, another name: the certificate is checked against the URL's name (SNI too)
        with pytest.raises(DeliveryFailed, match=r"certificate|hostname"):
            await client.post(f"https://other.example:{receiver.port}/hook", {}, b"{}")
        assert len(receiver.received) == 1
    finally:
        await client.aclose()
        await receiver.close()
