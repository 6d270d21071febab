"""`make dev-cert`: a self-signed certificate authority and a server certificate it signs,
for trying https locally (docker compose's nginx, or `rotator run` with ROTATOR_TLS_*).

    python -m rotator.devcert [DIR] [--name HOST ...] [--force]

writes to DIR (default deploy/tls):

- `ca.pem`: the CA certificate, the one file clients are told to trust
  (`curl --cacert`, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS);
- `cert.pem` and `key.pem` (mode 0600): the server's certificate, for localhost,
  127.0.0.1, ::1 and every --name, and its key.

The CA's private key is never written: once the server certificate is signed it is
discarded, so trusting `ca.pem` trusts this one certificate and nothing anyone could sign
later. Not for production: a real certificate (e.g. from Let's Encrypt) goes in the same
place (docs/https.md).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DIR = Path("deploy/tls")
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
VALID_DAYS = 365
FILES = ("ca.pem", "cert.pem", "key.pem")


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make(directory: Path, names: tuple[str, ...] = DEFAULT_NAMES) -> tuple[Path, Path, Path]:
    """Write ca.pem, cert.pem and key.pem into `directory`; their paths in that order."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyrotator dev CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (directory / f for f in FILES)
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # created 0600 before a byte of the key is written
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)  # an existing file keeps its mode through O_TRUNC
    return ca_path, cert_path, key_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rotator.devcert", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--name", action="append", default=[], metavar="HOST",
        help="another host name or address the certificate names (repeatable)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    existing = [args.directory / f for f in FILES if (args.directory / f).exists()]
    if existing and not args.force:
        print(
            f"devcert: {existing[0]} exists (clients may trust it already); --force replaces it",
            file=sys.stderr,
        )
        return 1
    names = tuple(dict.fromkeys([*DEFAULT_NAMES, *args.name]))
    ca, cert, key = make(args.directory, names)
    defaults = " (the defaults)" if args.directory == DEFAULT_DIR else ""
    print(
        f"wrote {ca} (trust this one), {cert} and {key} for {', '.join(names)}\n"
        f"  docker compose: ROTATOR_TLS_CERT_FILE={cert} ROTATOR_TLS_KEY_FILE={key}{defaults}\n"
        f"  rotator run:    ROTATOR_TLS_CERT_FILE={cert} ROTATOR_TLS_KEY_FILE={key} make run\n"
        f"  clients:        curl --cacert {ca} ..., or CURL_CA_BUNDLE / REQUESTS_CA_BUNDLE / "
        f"NODE_EXTRA_CA_CERTS={ca}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
