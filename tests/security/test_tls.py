"""TLS settings, their checks, and the contexts built from them, shaken hands with over
real sockets on 127.0.0.1 (uvloop, as the broker runs)."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest
from tls_material import TlsMaterial, make_tls_material

from broker.config import ConfigError
from broker.security.principal_mapping import MappingRulesError, principal_from_certificate
from broker.security.tls import (
    TlsConfigError,
    TlsSettings,
    build_client_context,
    build_server_context,
)

from .tls_server import Seen, connect, echo_server, run


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


def settings(material: TlsMaterial, **overrides: object) -> TlsSettings:
    base = TlsSettings(ssl_certfile=material.server_cert, ssl_keyfile=material.server_key)
    return replace(base, **overrides)  # type: ignore[arg-type]


def client(material: TlsMaterial, user: str | None = None, **kwargs: object) -> ssl.SSLContext:
    cert, key = material.client_cert(user) if user else (None, None)
    return build_client_context(
        cafile=material.ca_cert,
        certfile=cert,
        keyfile=key,
        **kwargs,  # type: ignore[arg-type]
    )


def shake(
    server: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[Seen, list[bytes | None]]:
    async def main() -> tuple[Seen, list[bytes | None]]:
        async with echo_server(server) as echo:
            return await connect(echo.port, client_context), echo.peers

    return run("uvloop", main())


# --- settings and files, no sockets ------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"ssl_client_auth": "want"}, "ssl_client_auth: expected one of none, requested"),
        ({"ssl_client_auth": "required"}, "no ssl_cafile says which client"),
        ({"ssl_client_auth": "requested"}, "no ssl_cafile says which client"),
        ({"ssl_enabled_protocols": ("TLSv1.1",)}, "ssl_enabled_protocols: expected some of"),
        ({"ssl_enabled_protocols": ()}, "got none"),
        ({"ssl_principal_mapping_rules": "RULE:x"}, "pattern has no closing '/'"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    material: TlsMaterial, overrides: dict[str, object], why: str
) -> None:
    with pytest.raises(ConfigError, match=why) as caught:
        settings(material, **overrides)
    assert "\n" not in str(caught.value)


@pytest.mark.unit
def test_a_bad_mapping_rule_is_a_config_error(material: TlsMaterial) -> None:
    with pytest.raises(MappingRulesError):
        settings(material, ssl_principal_mapping_rules="RULE:(/x/")


@pytest.mark.unit
def test_paths_may_be_strings(material: TlsMaterial) -> None:
    s = TlsSettings(ssl_certfile=str(material.server_cert), ssl_keyfile=str(material.server_key))  # type: ignore[arg-type]
    assert s.ssl_certfile == material.server_cert
    assert "hunter2" not in repr(replace(s, ssl_key_password="hunter2"))


def broken_files(material: TlsMaterial, tmp: Path) -> dict[str, tuple[dict[str, object], str]]:
    garbage = tmp / "garbage.pem"
    garbage.write_text("-----BEGIN NOTHING-----\nxx\n")
    half = tmp / "half.crt"
    half.write_bytes(material.server_cert.read_bytes()[:200])
    _, alice_key = material.client_cert("alice")
    return {
        "missing certificate": (
            {"ssl_certfile": tmp / "nope.crt"},
            "ssl_certfile .*nope.crt: no such file",
        ),
        "missing key": ({"ssl_keyfile": tmp / "nope.key"}, "ssl_keyfile .*nope.key: no such file"),
        "unreadable key": ({"ssl_keyfile": garbage}, "garbage.pem: no PEM private key"),
        "half-written certificate": ({"ssl_certfile": half}, "half.crt: no PEM certificate"),
        "encrypted key, no password": (
            {"ssl_keyfile": material.encrypted_server_key},
            "is encrypted and no ssl_key_password is set",
        ),
        "wrong password": (
            {"ssl_keyfile": material.encrypted_server_key, "ssl_key_password": "wrong"},
            "ssl_key_password does not decrypt ssl_keyfile",
        ),
        "key of another certificate": (
            {"ssl_keyfile": alice_key},
            "is not the key of the first certificate in ssl_certfile .*CN=localhost",
        ),
        "missing CA": (
            {"ssl_cafile": tmp / "nope-ca.crt", "ssl_client_auth": "required"},
            "ssl_cafile .*nope-ca.crt: no such file",
        ),
        "CA file without certificates": (
            {"ssl_cafile": garbage},
            "ssl_cafile .*: no PEM certificate",
        ),
    }


BROKEN = [
    "missing certificate",
    "missing key",
    "unreadable key",
    "half-written certificate",
    "encrypted key, no password",
    "wrong password",
    "key of another certificate",
    "missing CA",
    "CA file without certificates",
]


@pytest.mark.unit
@pytest.mark.parametrize("case", BROKEN)
def test_broken_files_are_named_with_the_reason(
    material: TlsMaterial, tmp_path: Path, case: str
) -> None:
    overrides, why = broken_files(material, tmp_path)[case]
    with pytest.raises(TlsConfigError, match=why) as caught:
        build_server_context(settings(material, **overrides))
    assert "\n" not in str(caught.value)


@pytest.mark.unit
def test_the_server_context_follows_the_settings(material: TlsMaterial) -> None:
    for auth, mode in [
        ("none", ssl.CERT_NONE),
        ("requested", ssl.CERT_OPTIONAL),
        ("required", ssl.CERT_REQUIRED),
    ]:
        s = settings(material, ssl_cafile=material.ca_cert, ssl_client_auth=auth)
        assert build_server_context(s).verify_mode == mode
    context = build_server_context(settings(material, ssl_enabled_protocols=("TLSv1.3",)))
    assert (context.minimum_version, context.maximum_version) == (
        ssl.TLSVersion.TLSv1_3,
        ssl.TLSVersion.TLSv1_3,
    )


@pytest.mark.unit
def test_cipher_suites_are_checked(material: TlsMaterial) -> None:
    only12 = ("TLSv1.2",)
    with pytest.raises(TlsConfigError, match="OpenSSL has no suite 'NOPE-CIPHER'"):
        build_server_context(
            settings(material, ssl_cipher_suites=("NOPE-CIPHER",), ssl_enabled_protocols=only12)
        )
    with pytest.raises(TlsConfigError, match=r"TLS 1\.3 suites cannot be narrowed"):
        build_server_context(settings(material, ssl_cipher_suites=("TLS_AES_128_GCM_SHA256",)))
    with pytest.raises(TlsConfigError, match=r"names no TLS 1\.2 suite"):
        build_server_context(
            settings(
                material,
                ssl_cipher_suites=("TLS_AES_128_GCM_SHA256",),
                ssl_enabled_protocols=("TLSv1.2",),
            )
        )


# --- handshakes over real sockets -----------------------------------------------------


def test_a_client_trusting_the_ca_sees_the_server_certificate(material: TlsMaterial) -> None:
    seen, peers = shake(build_server_context(settings(material)), client(material))
    assert seen.echoed, seen.error
    assert seen.serial == material.server.serial
    assert peers == [None]  # no client certificate asked for


def test_the_encrypted_key_serves_with_its_password(material: TlsMaterial) -> None:
    s = settings(
        material, ssl_keyfile=material.encrypted_server_key, ssl_key_password=material.key_password
    )
    seen, _ = shake(build_server_context(s), client(material))
    assert seen.echoed and seen.serial == material.server.serial


def test_by_ip_and_by_name(material: TlsMaterial) -> None:
    async def main() -> list[Seen]:
        async with echo_server(build_server_context(settings(material))) as echo:
            return [
                await connect(echo.port, client(material), host)
                for host in ("127.0.0.1", "localhost", "walrus.example")
            ]

    by_ip, by_name, other = run("uvloop", main())
    assert by_ip.echoed and by_name.echoed
    assert not other.echoed and "Hostname mismatch" in (other.error or "")


@pytest.mark.parametrize("which", ["untrusted CA", "expired"])
def test_a_server_the_client_cannot_trust_is_refused(
    material: TlsMaterial, tmp_path: Path, which: str
) -> None:
    if which == "expired":
        s = settings(
            material,
            ssl_certfile=material.expired_server_cert,
            ssl_keyfile=material.expired_server_key,
        )
        expected = "certificate has expired"
        context = client(material)
    else:
        s = settings(material)
        expected = "unable to get local issuer certificate"
        context = build_client_context(cafile=material.untrusted_ca_cert)
    seen, _ = shake(build_server_context(s), context)
    assert not seen.echoed and expected in (seen.error or "")


def test_client_auth_required(material: TlsMaterial) -> None:
    server = build_server_context(
        settings(material, ssl_cafile=material.ca_cert, ssl_client_auth="required")
    )
    seen, peers = shake(server, client(material, "alice"))
    assert seen.echoed, seen.error
    assert [principal_from_certificate(p, "DEFAULT") for p in peers] == ["User:CN=alice"]
    for refused in (client(material), untrusted_client(material)):
        seen, peers = shake(server, refused)
        assert not seen.echoed and peers == []


def test_client_auth_requested(material: TlsMaterial) -> None:
    server = build_server_context(
        settings(material, ssl_cafile=material.ca_cert, ssl_client_auth="requested")
    )
    anonymous, peers = shake(server, client(material))
    assert anonymous.echoed and [principal_from_certificate(p, "DEFAULT") for p in peers] == [
        "User:ANONYMOUS"
    ]
    bob, peers = shake(server, client(material, "bob"))
    assert bob.echoed and [principal_from_certificate(p, "RULE:CN=(.*)/$1/U") for p in peers] == [
        "User:BOB"
    ]
    # A certificate sent is checked even when none is required.
    mallory, peers = shake(server, untrusted_client(material))
    assert not mallory.echoed and peers == []


def untrusted_client(material: TlsMaterial) -> ssl.SSLContext:
    cert, key = material.untrusted_client_cert("mallory")
    return build_client_context(cafile=material.ca_cert, certfile=cert, keyfile=key)


def test_protocol_versions(material: TlsMaterial) -> None:
    only13 = build_server_context(settings(material, ssl_enabled_protocols=("TLSv1.3",)))
    seen, _ = shake(only13, client(material, enabled_protocols=("TLSv1.2",)))
    assert not seen.echoed
    seen, _ = shake(only13, client(material))
    assert seen.echoed and seen.version == "TLSv1.3"
    only12 = build_server_context(settings(material, ssl_enabled_protocols=("TLSv1.2",)))
    seen, _ = shake(only12, client(material))
    assert seen.echoed and seen.version == "TLSv1.2"


def test_cipher_suites_by_iana_name_limit_tls12(material: TlsMaterial) -> None:
    server = build_server_context(
        settings(
            material,
            ssl_enabled_protocols=("TLSv1.2",),
            ssl_cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",),
        )
    )
    seen, _ = shake(server, client(material))
    assert seen.echoed and seen.cipher == "ECDHE-ECDSA-AES256-GCM-SHA384"
    other = client(material)
    other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    other.maximum_version = ssl.TLSVersion.TLSv1_2
    seen, _ = shake(server, other)
    assert not seen.echoed


def test_client_context_needs_both_halves_of_its_certificate(material: TlsMaterial) -> None:
    with pytest.raises(TlsConfigError, match="both its certfile and its keyfile"):
        build_client_context(cafile=material.ca_cert, certfile=material.server_cert)
