"""TLS for the broker's listeners and its connections to other nodes: the settings, as
Kafka's broker names them, checked with reasons an operator can act on, and the standard
library `ssl` contexts built from them.

Keys and certificates are PEM files (Kafka's `ssl.keystore.type=PEM`): `ssl_certfile`
holds the certificate chain, leaf first; `ssl_cafile` the CAs whose client certificates
are trusted (Kafka's trust store).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from broker.config import ConfigError
from broker.security.principal_mapping import PrincipalMapper

# Kafka's ssl.client.auth values and what they ask of the client.
CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "requested": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
# TLSv1 and TLSv1.1 are absent: OpenSSL 3 refuses them at its default security level.
PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
DEFAULT_PROTOCOLS = ("TLSv1.2", "TLSv1.3")

# Kafka (Java) names TLS 1.2 suites by their IANA names, OpenSSL by its own; these are the
# AEAD suites worth enabling. Any OpenSSL name is accepted as well.
IANA_TO_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
}


class TlsConfigError(ConfigError):
    """A TLS setting or file that cannot be used; the message is one line with the
    setting, the file and the reason."""


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """One listener's TLS settings. Values are checked on construction; the files when a
    context is built (`build_server_context`), and again at each reload."""

    ssl_certfile: Path
    ssl_keyfile: Path
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_client_auth: str = "none"
    ssl_enabled_protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    ssl_cipher_suites: tuple[str, ...] = ()
    ssl_principal_mapping_rules: str = "DEFAULT"

    def __post_init__(self) -> None:
        # Paths given as strings (a TOML file, an environment variable) become Paths.
        for name in ("ssl_certfile", "ssl_keyfile", "ssl_cafile"):
            object.__setattr__(self, name, _path(getattr(self, name)))
        if self.ssl_client_auth not in CLIENT_AUTH:
            raise TlsConfigError(
                f"ssl_client_auth: expected one of none, requested, required; "
                f"got {self.ssl_client_auth!r}"
            )
        if self.ssl_client_auth != "none" and self.ssl_cafile is None:
            raise TlsConfigError(
                f"ssl_client_auth is {self.ssl_client_auth!r} but no ssl_cafile says "
                "which client certificates to trust"
            )
        protocol_range(self.ssl_enabled_protocols)
        # Parsed now so that a bad rule stops start-up, not the first client.
        PrincipalMapper.parse(self.ssl_principal_mapping_rules)

    @property
    def principal_mapper(self) -> PrincipalMapper:
        return PrincipalMapper.parse(self.ssl_principal_mapping_rules)


def protocol_range(protocols: tuple[str, ...]) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """(minimum, maximum) for ssl_enabled_protocols. OpenSSL takes a range, so the
    enabled versions must be adjacent."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise TlsConfigError(
            f"ssl_enabled_protocols: expected some of {', '.join(PROTOCOLS)}; "
            f"got {', '.join(protocols) or 'none'}"
        )
    versions = sorted(PROTOCOLS[p] for p in set(protocols))
    return versions[0], versions[-1]


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """The bytes of the key, the chain and the CAs as read and checked together, so that
    what is loaded into a context is what was checked."""

    cert_pem: bytes
    key_pem: bytes
    key_password: str | None
    chain: tuple[x509.Certificate, ...]
    ca_pem: bytes | None
    cas: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def read_key_material(
    certfile: Path, keyfile: Path, key_password: str | None, cafile: Path | None
) -> KeyMaterial:
    """Reads and checks the files: each exists and parses, the password decrypts the
    key, the key belongs to the first certificate. Raises TlsConfigError."""
    cert_pem = _read("ssl_certfile", certfile)
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_pem))
    except ValueError:
        raise TlsConfigError(f"ssl_certfile {certfile}: no PEM certificate in it") from None
    key_pem = _read("ssl_keyfile", keyfile)
    key = _load_key(keyfile, key_pem, key_password)
    if _public(key) != chain[0].public_key().public_bytes(*_SPKI):
        raise TlsConfigError(
            f"ssl_keyfile {keyfile} is not the key of the first certificate in "
            f"ssl_certfile {certfile} ({chain[0].subject.rfc4514_string()})"
        )
    ca_pem: bytes | None = None
    cas: tuple[x509.Certificate, ...] = ()
    if cafile is not None:
        ca_pem = _read("ssl_cafile", cafile)
        try:
            cas = tuple(x509.load_pem_x509_certificates(ca_pem))
        except ValueError:
            raise TlsConfigError(f"ssl_cafile {cafile}: no PEM certificate in it") from None
    return KeyMaterial(cert_pem, key_pem, key_password, chain, ca_pem, cas)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _public(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(*_SPKI)


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"{setting} {path}: no such file") from None
    except OSError as exc:
        raise TlsConfigError(f"{setting} {path}: cannot be read ({exc.strerror})") from None


def _load_key(path: Path, pem: bytes, password: str | None) -> PrivateKeyTypes:
    secret = password.encode() if password is not None else None
    try:
        return serialization.load_pem_private_key(pem, secret)
    except TypeError:
        if secret is None:
            raise TlsConfigError(
                f"ssl_keyfile {path} is encrypted and no ssl_key_password is set"
            ) from None
        # A password for a key that has none: OpenSSL ignores it, and so do we.
        return _load_key(path, pem, None)
    except ValueError:
        if secret is not None and b"ENCRYPTED" in pem:
            raise TlsConfigError(f"ssl_key_password does not decrypt ssl_keyfile {path}") from None
        raise TlsConfigError(f"ssl_keyfile {path}: no PEM private key in it") from None
    except Exception as exc:  # unsupported key types and encryption schemes
        raise TlsConfigError(f"ssl_keyfile {path}: cannot be read ({exc})") from None


def load_into(context: ssl.SSLContext, material: KeyMaterial) -> None:
    """Loads the chain, the key and the CAs into `context`. New handshakes use them;
    connections already made keep theirs. CAs are added to those the context trusts
    (OpenSSL has no way to remove one from a context)."""
    # load_cert_chain reads files only. A memory file keeps the key off the disk and
    # makes sure the bytes loaded are the bytes checked, whatever the files do meanwhile.
    with (
        _memory_file("chain", material.cert_pem) as chain,
        _memory_file("key", material.key_pem) as key,
    ):
        context.load_cert_chain(chain, key, password=material.key_password)
    if material.ca_pem is not None:
        context.load_verify_locations(cadata=material.ca_pem.decode("ascii", "replace"))


@contextmanager
def _memory_file(name: str, data: bytes) -> Iterator[str]:
    """A path that reads as `data`: a memfd on Linux, a private temporary file elsewhere."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(f"walrus-tls-{name}", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="walrus-tls-") as directory:
        path = Path(directory) / name
        path.write_bytes(data)
        yield str(path)


def build_server_context(
    settings: TlsSettings, material: KeyMaterial | None = None
) -> ssl.SSLContext:
    """A server-side context for a listener, for `loop.create_server(ssl=...)`, with
    `material` if already read from the settings' files. Raises TlsConfigError."""
    if material is None:
        material = read_key_material(
            settings.ssl_certfile,
            settings.ssl_keyfile,
            settings.ssl_key_password,
            settings.ssl_cafile,
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = protocol_range(
        settings.ssl_enabled_protocols
    )
    # Renegotiation only serves attacks on a protocol that never asks for it.
    context.options |= ssl.OP_NO_RENEGOTIATION
    if settings.ssl_cipher_suites:
        set_cipher_suites(context, settings.ssl_cipher_suites, settings.ssl_enabled_protocols)
    context.verify_mode = CLIENT_AUTH[settings.ssl_client_auth]
    _load(context, material, settings.ssl_keyfile)
    return context


def build_client_context(
    *,
    cafile: str | os.PathLike[str],
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    key_password: str | None = None,
    enabled_protocols: tuple[str, ...] = DEFAULT_PROTOCOLS,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client-side context for a node's connections to other nodes: the server must
    present a certificate signed by a CA in `cafile` (and, with check_hostname, name the
    host connected to); certfile/keyfile is the certificate this node presents when the
    other side asks (client auth). Raises TlsConfigError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version, context.maximum_version = protocol_range(enabled_protocols)
    context.check_hostname = check_hostname
    if (certfile is None) != (keyfile is None):
        raise TlsConfigError("a client certificate needs both its certfile and its keyfile")
    ca_pem = _read("ssl_cafile", Path(cafile))
    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise TlsConfigError(f"ssl_cafile {cafile}: no PEM certificate in it") from None
    if certfile is not None and keyfile is not None:
        material = read_key_material(Path(certfile), Path(keyfile), key_password, Path(cafile))
        _load(context, material, Path(keyfile))
    else:
        context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
    return context


def _load(context: ssl.SSLContext, material: KeyMaterial, keyfile: Path) -> None:
    try:
        load_into(context, material)
    except ssl.SSLError as exc:
        # The checks above pass and OpenSSL still refuses: say what it said.
        raise TlsConfigError(f"ssl_keyfile {keyfile}: OpenSSL refuses it ({exc.reason})") from None


def set_cipher_suites(
    context: ssl.SSLContext, suites: tuple[str, ...], protocols: tuple[str, ...]
) -> None:
    """Restricts the TLS 1.2 suites to `suites` (IANA or OpenSSL names). Python's ssl
    cannot restrict TLS 1.3 suites (all three of OpenSSL's are strong AEADs), so with
    TLSv1.3 enabled the list must name all of them or it would not mean what it says."""
    tls13 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"}
    named13 = {s for s in suites if s in tls13}
    older = [IANA_TO_OPENSSL.get(s, s) for s in suites if s not in tls13]
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for suite in older:
        try:
            probe.set_ciphers(suite)
        except ssl.SSLError:
            raise TlsConfigError(f"ssl_cipher_suites: OpenSSL has no suite {suite!r}") from None
    if "TLSv1.3" in protocols and named13 != tls13:
        raise TlsConfigError(
            "ssl_cipher_suites: TLS 1.3 suites cannot be narrowed here; with TLSv1.3 "
            f"enabled name all of {', '.join(sorted(tls13))}, or disable TLSv1.3"
        )
    if "TLSv1.2" in protocols:
        if not older:
            raise TlsConfigError("ssl_cipher_suites names no TLS 1.2 suite but TLSv1.2 is enabled")
        context.set_ciphers(":".join(older))
