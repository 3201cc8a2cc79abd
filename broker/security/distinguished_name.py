"""A certificate subject as the text Kafka builds its SSL principal from.

Kafka takes the client's name from the JDK's `X500Principal.getName()`, the RFC 2253
form: relative names most specific first ("CN=alice,OU=eng,O=Acme,C=US"). Mapping rules
are regular expressions over that text, so Walrus must produce the same characters, not
merely an equivalent name. `cryptography`'s `Name.rfc4514_string()` (RFC 4514, the
successor of RFC 2253) agrees on the order and on the common attributes, but not on:

- attributes without an RFC 2253 keyword (emailAddress, serialNumber, title...): the JDK
  writes the dotted OID and `#` + the hex of the value's DER encoding
  ("1.2.840.113549.1.9.1=#160f626f62..."), cryptography writes the decoded text;
- escaping: the JDK also escapes `=` and `#` anywhere in a value, and every leading or
  trailing space, where RFC 4514 escapes `#` only first and one space at each end.

So the name is written here from the subject's DER, with the JDK's rules (checked
against OpenJDK 17 by tests/security/test_distinguished_name.py). One deliberate
difference: a BMPString value is decoded as UTF-16; JDK 17 shows its raw bytes
("\\00b\\00m..."), a name no operator would have written a rule or an ACL for.
"""

from __future__ import annotations

from cryptography import x509

# The only keywords RFC 2253 (and so the JDK) writes; every other type is an OID.
_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}

# ASN.1 string types written as text, with their character encodings. T61String as
# Latin-1, as the JDK reads it. UniversalString is absent: the JDK writes it as hex.
_TEXT_TAGS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "latin-1",  # NumericString
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
    0x1E: "utf-16-be",  # BMPString
}

_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_ESCAPED = frozenset(',=+<>#;"\\')


class MalformedName(ValueError):
    """The subject is not the DER this module reads."""


def subject_name(certificate: bytes | x509.Certificate) -> str:
    """The certificate's subject in Kafka's RFC 2253 form. `certificate` is DER
    (`SSLObject.getpeercert(binary_form=True)`) or a parsed certificate."""
    if isinstance(certificate, bytes):
        try:
            certificate = x509.load_der_x509_certificate(certificate)
        except ValueError as exc:
            raise MalformedName(f"not a DER certificate: {exc}") from exc
    return rfc2253(certificate.subject.public_bytes())


def rfc2253(name_der: bytes) -> str:
    """A DER-encoded X.500 Name as the JDK's `X500Principal.getName()` writes it."""
    tag, body, end = _read(name_der, 0)
    if tag != _SEQUENCE or end != len(name_der):
        raise MalformedName("a Name is one SEQUENCE")
    rdns: list[str] = []
    pos = body
    while pos < end:
        tag, set_body, set_end = _read(name_der, pos)
        if tag != _SET:
            raise MalformedName("a relative name is a SET")
        rdns.append("+".join(_attributes(name_der, set_body, set_end)))
        pos = set_end
    # DER lists the most general name first; RFC 2253 writes the most specific first.
    return ",".join(reversed(rdns))


def _attributes(der: bytes, pos: int, end: int) -> list[str]:
    written = []
    while pos < end:
        tag, body, attribute_end = _read(der, pos)
        if tag != _SEQUENCE:
            raise MalformedName("an attribute is a SEQUENCE")
        oid_tag, oid_body, oid_end = _read(der, body)
        if oid_tag != _OID:
            raise MalformedName("an attribute starts with its type's OID")
        oid = _oid(der[oid_body:oid_end])
        value_tag, value_body, value_end = _read(der, oid_end)
        if value_end != attribute_end:
            raise MalformedName("an attribute is a type and one value")
        keyword = _KEYWORDS.get(oid)
        encoding = _TEXT_TAGS.get(value_tag)
        if keyword is not None and encoding is not None:
            text = der[value_body:value_end].decode(encoding, errors="replace")
            written.append(f"{keyword}={_escape(text)}")
        else:
            written.append(f"{keyword or oid}=#{der[oid_end:value_end].hex()}")
        pos = attribute_end
    return written


def _escape(value: str) -> str:
    out = []
    for char in value:
        if char in _ESCAPED:
            out.append("\\" + char)
        elif char == "\0":
            out.append("\\00")
        else:
            out.append(char)
    # Every leading and every trailing space, as the JDK does (RFC 2253 needs only one).
    lead = len(value) - len(value.lstrip(" "))
    if lead == len(value):
        return "\\ " * lead
    trail = len(value) - len(value.rstrip(" "))
    middle = "".join(out[lead : len(out) - trail])
    return "\\ " * lead + middle + "\\ " * trail


def _read(der: bytes, pos: int) -> tuple[int, int, int]:
    """The TLV at `pos`: (tag, start of the value, end of the value)."""
    if pos + 2 > len(der):
        raise MalformedName("truncated")
    tag, first = der[pos], der[pos + 1]
    if tag & 0x1F == 0x1F:
        raise MalformedName("multi-byte tags do not occur in a Name")
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or pos + count > len(der):
            raise MalformedName("bad length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise MalformedName("truncated")
    return tag, pos, pos + length


def _oid(body: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or body[-1] & 0x80:
        raise MalformedName("bad OID")
    first = arcs[0]
    # The first subidentifier packs two arcs: 40 * X + Y, with X at most 2.
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in head + arcs[1:])
