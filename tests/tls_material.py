"""Certificates and keys for TLS tests, generated into a directory as PEM files.

One call makes everything a test of a TLS listener usually needs:

    material = make_tls_material(tmp_path / "tls")
    material.ca_cert                    # trust this to verify the server and the clients
    material.server_cert, .server_key   # for 127.0.0.1, ::1 and localhost (SAN)
    material.client_cert("alice")       # (cert, key) for CN=alice, signed by the CA
    material.untrusted_ca_cert          # a CA nobody trusts...
    material.untrusted_client_cert("mallory")   # ...and a client certificate it signed
    material.expired_server_cert, .expired_server_key
    material.encrypted_server_key, .key_password  # the server key, encrypted

Every path is a PEM file; the certificate files hold the leaf only (the CA is
`ca_cert`). `material.ca.issue(...)` signs anything else (a subject of your own, other
SANs, other validity). EC P-256 keys, so a full set takes milliseconds.

Importable as `tls_material` from tests/ (tests/conftest.py puts tests/ on sys.path)
and as `tests.tls_material` from compat_tests/.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_DNS_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")
KEY_PASSWORD = "walrus-key-password"

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its key as written to disk."""

    cert: Path
    key: Path
    certificate: x509.Certificate

    @property
    def serial(self) -> int:
        return self.certificate.serial_number


def _name(subject: str | x509.Name) -> x509.Name:
    if isinstance(subject, x509.Name):
        return subject
    return x509.Name.from_rfc4514_string(subject)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password is not None
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    path.chmod(0o600)


def write_cert(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


@dataclass(slots=True)
class CertificateAuthority:
    """A self-signed CA that signs leaf certificates into its directory."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert: Path

    @classmethod
    def create(cls, directory: Path, stem: str, subject: str) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name(subject)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 3650 * _DAY)
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(directory / f"{stem}.key", key)
        return cls(directory, key, certificate, write_cert(directory / f"{stem}.crt", certificate))

    def issue(
        self,
        stem: str,
        subject: str | x509.Name,
        *,
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        key_password: str | None = None,
    ) -> Issued:
        """Signs a leaf for `subject` (RFC 4514, e.g. "CN=alice,O=Acme") usable for both
        server and client authentication, and writes `<stem>.crt` and `<stem>.key`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _DAY)
            .not_valid_after(not_after or now + 365 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        key_path = self.directory / f"{stem}.key"
        _write_key(key_path, key, key_password)
        cert_path = write_cert(self.directory / f"{stem}.crt", certificate)
        return Issued(cert_path, key_path, certificate)

    def issue_server(
        self,
        stem: str,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A server certificate for this machine's loopback names."""
        return self.issue(
            stem,
            "CN=localhost,O=Walrus Tests",
            dns_names=SERVER_DNS_NAMES,
            ips=SERVER_IPS,
            not_before=not_before,
            not_after=not_after,
        )


@dataclass(slots=True)
class TlsMaterial:
    """Everything `make_tls_material` wrote; see the module docstring."""

    directory: Path
    ca: CertificateAuthority
    untrusted_ca: CertificateAuthority
    server: Issued
    expired_server: Issued
    encrypted_server_key: Path
    key_password: str = KEY_PASSWORD
    _clients: dict[tuple[bool, str], Issued] = field(default_factory=dict)

    @property
    def ca_cert(self) -> Path:
        return self.ca.cert

    @property
    def untrusted_ca_cert(self) -> Path:
        return self.untrusted_ca.cert

    @property
    def server_cert(self) -> Path:
        return self.server.cert

    @property
    def server_key(self) -> Path:
        return self.server.key

    @property
    def expired_server_cert(self) -> Path:
        return self.expired_server.cert

    @property
    def expired_server_key(self) -> Path:
        return self.expired_server.key

    def client(self, name: str, *, trusted: bool = True) -> Issued:
        """The client certificate for CN=<name> (made on first use, then the same files).
        Kafka's DEFAULT principal for it is "User:CN=<name>"."""
        cached = self._clients.get((trusted, name))
        if cached is None:
            ca = self.ca if trusted else self.untrusted_ca
            stem = f"client-{name}" if trusted else f"untrusted-client-{name}"
            cached = ca.issue(stem, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            self._clients[(trusted, name)] = cached
        return cached

    def client_cert(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of a client CN=<name> signed by the trusted CA."""
        issued = self.client(name)
        return issued.cert, issued.key

    def untrusted_client_cert(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of a client CN=<name> signed by the untrusted CA."""
        issued = self.client(name, trusted=False)
        return issued.cert, issued.key


def make_tls_material(directory: Path) -> TlsMaterial:
    """Generates a CA, a server certificate, an expired one, an encrypted copy of the
    server key and an untrusted CA into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(directory, "ca", "CN=Walrus Test CA,O=Walrus Tests")
    untrusted = CertificateAuthority.create(
        directory, "untrusted-ca", "CN=Untrusted Test CA,O=Elsewhere"
    )
    server = ca.issue_server("server")
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_server("expired-server", not_before=now - 30 * _DAY, not_after=now - _DAY)
    key = serialization.load_pem_private_key(server.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    encrypted = directory / "server-encrypted.key"
    _write_key(encrypted, key, KEY_PASSWORD)
    return TlsMaterial(directory, ca, untrusted, server, expired, encrypted)
