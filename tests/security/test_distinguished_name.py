"""A certificate subject written as Kafka's principal builder sees it (the JDK's RFC 2253
form). The expected strings are what OpenJDK 17's X500Principal.getName() printed for
the same certificates; test_distinguished_name_jdk.py re-checks them against a JDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier
from tls_material import CertificateAuthority

from broker.security.distinguished_name import MalformedName, rfc2253, subject_name

pytestmark = pytest.mark.unit

A = x509.NameAttribute
RDN = x509.RelativeDistinguishedName

# (subject attributes in DER order, the JDK's getName())
CASES: dict[str, tuple[list[x509.NameAttribute[str] | x509.RelativeDistinguishedName], str]] = {
    "most specific first": (
        [
            A(NameOID.COUNTRY_NAME, "US"),
            A(NameOID.ORGANIZATION_NAME, "Acme"),
            A(NameOID.ORGANIZATIONAL_UNIT_NAME, "eng"),
            A(NameOID.COMMON_NAME, "alice"),
        ],
        "CN=alice,OU=eng,O=Acme,C=US",
    ),
    "email address as OID and DER hex": (
        [A(NameOID.COMMON_NAME, "bob"), A(NameOID.EMAIL_ADDRESS, "bob@example.com")],
        "1.2.840.113549.1.9.1=#160f626f62406578616d706c652e636f6d,CN=bob",
    ),
    "specials escaped, = and # included": (
        [A(NameOID.COMMON_NAME, 'a=b,c+d;e<f>g"h\\i#j')],
        'CN=a\\=b\\,c\\+d\\;e\\<f\\>g\\"h\\\\i\\#j',
    ),
    "every leading and trailing space": (
        [A(NameOID.COMMON_NAME, "  x  ")],
        "CN=\\ \\ x\\ \\ ",
    ),
    "a lone space": ([A(NameOID.COMMON_NAME, " ")], "CN=\\ "),
    "leading hash": ([A(NameOID.COMMON_NAME, "#x")], "CN=\\#x"),
    "multi-valued RDN in DER order": (
        [RDN([A(NameOID.COMMON_NAME, "m"), A(NameOID.USER_ID, "u1")])],
        "CN=m+UID=u1",
    ),
    "keywords and OIDs": (
        [
            A(NameOID.DOMAIN_COMPONENT, "com"),
            A(NameOID.DOMAIN_COMPONENT, "example"),
            A(NameOID.SERIAL_NUMBER, "42"),
            A(NameOID.STREET_ADDRESS, "Main St"),
            A(NameOID.LOCALITY_NAME, "Town"),
            A(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            A(NameOID.TITLE, "boss"),
            A(NameOID.GIVEN_NAME, "Al"),
            A(NameOID.SURNAME, "Ice"),
        ],
        "2.5.4.4=#0c03496365,2.5.4.42=#0c02416c,2.5.4.12=#0c04626f7373,ST=CA,L=Town,"
        "STREET=Main St,2.5.4.5=#13023432,DC=example,DC=com",
    ),
    "unicode as is": ([A(NameOID.COMMON_NAME, "José Müller ✓")], "CN=José Müller ✓"),
    "control characters, NUL as \\00": (
        [A(NameOID.COMMON_NAME, "tab\there\nnl\x00nul")],
        "CN=tab\there\nnl\\00nul",
    ),
    "T61String as text, UniversalString as hex": (
        [
            A(NameOID.COMMON_NAME, "t61", _type=_ASN1Type.T61String),
            A(NameOID.ORGANIZATION_NAME, "uni", _type=_ASN1Type.UniversalString),
            A(ObjectIdentifier("1.3.6.1.4.1.99999.1"), "x"),
        ],
        "1.3.6.1.4.1.99999.1=#0c0178,O=#1c0c000000750000006e00000069,CN=t61",
    ),
}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("dn"), "ca", "CN=dn test CA")


def certificate_for(
    ca: CertificateAuthority, stem: str, attributes: list[x509.NameAttribute[str] | RDN]
) -> x509.Certificate:
    rdns = [a if isinstance(a, RDN) else RDN([a]) for a in attributes]
    return ca.issue(stem, x509.Name(rdns)).certificate


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_subject_is_written_as_the_jdk_writes_it(ca: CertificateAuthority, case: str) -> None:
    attributes, expected = CASES[case]
    certificate = certificate_for(ca, "leaf", attributes)
    assert subject_name(certificate) == expected
    assert subject_name(certificate.public_bytes(Encoding.DER)) == expected


def test_where_rfc4514_agrees_the_text_is_the_same(ca: CertificateAuthority) -> None:
    attributes, expected = CASES["most specific first"]
    certificate = certificate_for(ca, "plain", attributes)
    assert certificate.subject.rfc4514_string() == expected == subject_name(certificate)


def test_an_empty_subject_is_the_empty_string() -> None:
    assert rfc2253(x509.Name([]).public_bytes()) == ""


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30", b"\x30\x05\x31\x00", b"\x31\x00", b"\x30\x02\x30\x00", b"\x30\x00\x00"],
)
def test_malformed_names_are_refused(der: bytes) -> None:
    with pytest.raises(MalformedName):
        rfc2253(der)


def test_bytes_that_are_no_certificate_are_refused() -> None:
    with pytest.raises(MalformedName, match="not a DER certificate"):
        subject_name(b"\x30\x03\x02\x01\x01")


def write_case_certificates(ca: CertificateAuthority, directory: Path) -> dict[str, Path]:
    """DER files of every case, for the JDK cross-check."""
    paths = {}
    for index, (case, (attributes, _)) in enumerate(sorted(CASES.items())):
        path = directory / f"case{index}.der"
        path.write_bytes(certificate_for(ca, f"case{index}", attributes).public_bytes(Encoding.DER))
        paths[case] = path
    return paths
