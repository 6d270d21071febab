"""rediss:// end to end. The bundled valkey-server has no TLS, so a small TLS-terminating
proxy (self-signed certificate made here) stands in front of the test server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotator.domain.errors import StoreUnavailable
from rotator.embedded import EmbeddedValkey
from rotator.store.fastredis import FastRedis


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test valkey")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_proxy(valkey: EmbeddedValkey, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    cert_path, key_path = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(valkey.host, valkey.port)
        writers.extend((client_w, server_w))
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    def spawn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(handle(r, w))
        tasks.add(task)
        writers.append(w)

    server = await asyncio.start_server(spawn, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], cert_path
    server.close()
    for writer in writers:
        writer.close()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


async def test_rediss_url_speaks_tls(tls_proxy: tuple[int, Path], redis: aioredis.Redis) -> None:
    port, ca_path = tls_proxy
    client = await FastRedis.connect(
        f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca_path}", timeout_ms=2000
    )
    try:
        replies = await asyncio.gather(*(client.execute("INCR", "over-tls") for _ in range(100)))
        assert replies == list(range(1, 101))
    finally:
        await client.close()


async def test_rediss_refuses_an_unknown_certificate(tls_proxy: tuple[int, Path]) -> None:
    port, _ = tls_proxy
    with pytest.raises(StoreUnavailable) as caught:
        await FastRedis.connect(f"rediss://127.0.0.1:{port}", timeout_ms=2000)
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
