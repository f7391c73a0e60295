"""A local TLS certificate for the reverse proxy: a one-off certificate authority signs a server certificate
for the given names, and the authority's private key is thrown away at once, so trusting ``ca.pem`` (in a
browser, or ``curl --cacert``) trusts this one certificate and nothing anyone could sign later.

Writes into ``--out``: ``ca.pem`` (to trust), ``cert.pem`` (the server certificate) and ``key.pem`` (its key,
mode 0600). Run again, it keeps what it finds while that still covers the names and has 30 days left.

    python deploy/tls/make_local_cert.py --out ./tls --name localhost --ip 127.0.0.1

Needs only the ``cryptography`` package (a dependency of tradedesk, so the tradedesk image has it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
RENEW_BEFORE_DAYS = 30


def _names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(san.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def still_good(out: Path, *, names: list[str], ips: list[str], now: dt.datetime) -> bool:
    """The certificate in ``out`` covers every name and address and is not about to expire."""
    paths = [out / "ca.pem", out / "cert.pem", out / "key.pem"]
    if not all(path.is_file() for path in paths):
        return False
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    dns, addresses = _names(cert)
    fresh = cert.not_valid_after_utc - now > dt.timedelta(days=RENEW_BEFORE_DAYS)
    return fresh and set(names) <= dns and {str(ipaddress.ip_address(ip)) for ip in ips} <= addresses


def make(out: Path, *, names: list[str], ips: list[str], now: dt.datetime) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tradedesk local"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"tradedesk local CA {now:%Y-%m-%d %H:%M:%S}"),
        ]
    )
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=VALID_DAYS)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # It signs exactly one certificate, a server's, and no intermediate.
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ips)[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "key.pem"
    key_path.unlink(missing_ok=True)
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    (out / "cert.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for ca.pem, cert.pem, key.pem")
    parser.add_argument("--name", action="append", default=[], help="a DNS name (repeatable)")
    parser.add_argument("--ip", action="append", default=[], help="an IP address (repeatable)")
    parser.add_argument("--force", action="store_true", help="make a new one even if the old one is good")
    args = parser.parse_args(argv)
    if not args.name and not args.ip:
        parser.error("give at least one --name or --ip")
    now = dt.datetime.now(dt.UTC)
    if not args.force and still_good(args.out, names=args.name, ips=args.ip, now=now):
        print(f"{args.out}: the certificate there is still good", file=sys.stderr)
        return 0
    make(args.out, names=args.name, ips=args.ip, now=now)
    print(f"{args.out}: new certificate for {', '.join(args.name + args.ip)}; trust ca.pem", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
