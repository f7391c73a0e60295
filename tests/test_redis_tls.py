"""Redis over TLS (``rediss://``), verified against the operator's CA: sessions, the session read on every
request and readiness all go through it; a server whose certificate the configured CA did not sign is
refused (the API fails closed: 503, nobody signed in)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ClientFactory, SignIn, as_app_role, make_settings
from tests.procs import free_port, wait_for_port
from tradedesk.kit.clock import ManualClock
from tradedesk.main import create_app


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca: Path
    other_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _ca(name: str, folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key, _pem(folder / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    ca, ca_key, ca_path = _ca("td-test-ca", tmp_path)
    _, _, other_path = _ca("td-other-ca", tmp_path)
    key = _key()
    now = dt.datetime.now(dt.UTC)
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = _pem(tmp_path / "server.crt", server.public_bytes(serialization.Encoding.PEM))
    key_path = _pem(
        tmp_path / "server.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(cert_path), "--tls-key-file", str(key_path)),
            *("--tls-ca-cert-file", str(ca_path), "--tls-auth-clients", "no"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, what="redis-server with TLS")
    try:
        yield TlsRedis(port=port, ca=ca_path, other_ca=other_path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["trusted", "untrusted"])
def trusted(request: pytest.FixtureRequest) -> bool:
    return request.param == "trusted"


@pytest.fixture
async def api(  # type: ignore[override]
    clean_database: str,
    redis_prefix: str,
    clock: ManualClock,
    kitesim: object,
    tls_redis: TlsRedis,
    trusted: bool,
) -> AsyncIterator[object]:
    ca = tls_redis.ca if trusted else tls_redis.other_ca
    settings = make_settings(
        as_app_role(clean_database),
        redis_prefix=redis_prefix,
        redis_url=f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={ca}",
    )
    app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        yield app


async def test_sessions_live_in_redis_over_verified_tls(
    new_client: ClientFactory, sign_in: SignIn, trusted: bool
) -> None:
    browser = new_client()
    if not trusted:
        # A Redis whose certificate the configured CA did not sign is not talked to: fail closed.
        assert (await browser.get("/readyz")).status_code == 503
        with pytest.raises(AssertionError, match="503"):
            await sign_in(browser, "DEMO01")
        return
    assert (await browser.get("/readyz")).status_code == 200
    await sign_in(browser, "DEMO01")
    status = (await browser.get("/api/auth/status")).json()
    assert status["authenticated"] is True and status["broker_id"] == "DEMO01"
    sessions = await browser.get("/api/auth/sessions")
    assert sessions.status_code == 200 and len(sessions.json()) == 1
    assert (await browser.post("/api/auth/logout")).status_code == 204
    assert (await browser.get("/api/auth/status")).json()["authenticated"] is False
