"""A JSON Web Key Set (RFC 7517): the public keys an OAUTHBEARER token may be signed with.

The broker reads the document (a file, or later an HTTPS endpoint) and builds a `KeySet`;
reloading is building a new one, so a validator never sees a half-updated set. Only
signature keys of the types the validator can use are kept: RSA, and EC on P-256, P-384
and P-521. Keys of other types (symmetric "oct", "OKP") and keys marked for encryption
(by "use", "key_ops" or "alg") are skipped rather than refused, because an identity provider's JWKS routinely holds
them beside the signing keys. A supported key whose material is malformed is refused:
that is a configuration error the operator should hear about at load time, not a token
that mysteriously never verifies.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

# RFC 7518 3.3: RSA keys for RS*/PS* are at least 2048 bits; shorter ones are factorable
# by a determined attacker and have no place in a key set we trust.
MIN_RSA_BITS = 2048

# JWS "alg" values a key of each kind can verify (RFC 7518 3.1).
RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALG_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
SIGNATURE_ALGS = RSA_ALGS | frozenset(EC_ALG_BY_CURVE.values())
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class InvalidKeySet(ValueError):
    """The JWKS document cannot be used: not JSON, no "keys" list, a malformed key."""


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 2): other alphabets, padding and
    impossible lengths are refused rather than repaired, so one token has one spelling."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as e:
        raise ValueError("not base64url") from e


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str | None
    # The "alg" the set pins this key to, when it does (RFC 7517 4.4).
    alg: str | None
    public_key: PublicKey

    def can_verify(self, alg: str) -> bool:
        """Whether a JWS signed with `alg` may be checked with this key. Ties an RSA key to
        RS*/PS* and an EC key to the one alg of its curve, so a token cannot pick a
        weaker or mismatched algorithm for a key."""
        if self.alg is not None and self.alg != alg:
            return False
        if isinstance(self.public_key, rsa.RSAPublicKey):
            return alg in RSA_ALGS
        return EC_ALG_BY_CURVE.get(_curve_name(self.public_key)) == alg


def _curve_name(key: ec.EllipticCurvePublicKey) -> str:
    for name, curve in _CURVES.items():
        if curve.name == key.curve.name:
            return name
    return ""


def coordinate_bytes(key: ec.EllipticCurvePublicKey) -> int:
    """Length of r and of s in a JWS ECDSA signature made with this key (RFC 7518 3.4)."""
    return _COORDINATE_BYTES[_curve_name(key)]


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: tuple[VerificationKey, ...]

    @classmethod
    def from_json(cls, document: str | bytes) -> KeySet:
        try:
            parsed = json.loads(document)
        except (ValueError, RecursionError) as e:
            raise InvalidKeySet("the JWKS is not JSON") from e
        if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
            raise InvalidKeySet('the JWKS has no "keys" list')
        keys = []
        for index, entry in enumerate(parsed["keys"]):
            if not isinstance(entry, dict):
                raise InvalidKeySet(f"key {index} is not a JSON object")
            key = _parse_key(entry, index)
            if key is not None:
                keys.append(key)
        return cls(tuple(keys))

    def candidates(self, kid: str | None, alg: str) -> Sequence[VerificationKey]:
        """The keys a token with this header may have been signed with. A token that names
        a kid gets only the keys with that kid. One without a kid is accepted only when
        the set holds a single usable key: with several, which one signed is a guess, and
        a set shared by several issuers should make each token say."""
        usable = [key for key in self.keys if key.can_verify(alg)]
        if kid is not None:
            return [key for key in usable if key.kid == kid]
        return usable if len(usable) == 1 else []


def _parse_key(entry: dict[str, Any], index: int) -> VerificationKey | None:
    kty = entry.get("kty")
    use = entry.get("use")
    key_ops = entry.get("key_ops")
    if use is not None and use != "sig":
        return None
    if isinstance(key_ops, list) and "verify" not in key_ops:
        return None
    if kty not in ("RSA", "EC"):
        return None
    kid = entry.get("kid")
    alg = entry.get("alg")
    if kid is not None and not isinstance(kid, str):
        raise InvalidKeySet(f'key {index}: "kid" is not a string')
    if alg is not None and not isinstance(alg, str):
        raise InvalidKeySet(f'key {index}: "alg" is not a string')
    if alg is not None and alg not in SIGNATURE_ALGS:
        return None  # pinned to something else, such as RSA-OAEP encryption
    public_key = _rsa_key(entry, index) if kty == "RSA" else _ec_key(entry, index)
    key = VerificationKey(kid, alg, public_key)
    if alg is not None and not key.can_verify(alg):
        raise InvalidKeySet(f'key {index}: "alg" {alg} does not fit a {kty} key')
    return key


def _member(entry: dict[str, Any], name: str, index: int) -> bytes:
    value = entry.get(name)
    if not isinstance(value, str):
        raise InvalidKeySet(f'key {index}: "{name}" is missing')
    try:
        return b64url_decode(value)
    except ValueError as e:
        raise InvalidKeySet(f'key {index}: "{name}" is not base64url') from e


def _rsa_key(entry: dict[str, Any], index: int) -> rsa.RSAPublicKey:
    n = int.from_bytes(_member(entry, "n", index), "big")
    e = int.from_bytes(_member(entry, "e", index), "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise InvalidKeySet(f"key {index}: RSA modulus shorter than {MIN_RSA_BITS} bits")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as err:
        raise InvalidKeySet(f"key {index}: not a valid RSA public key") from err


def _ec_key(entry: dict[str, Any], index: int) -> ec.EllipticCurvePublicKey:
    crv = entry.get("crv")
    if crv not in _CURVES:
        raise InvalidKeySet(f"key {index}: unsupported curve {crv!r}")
    x, y = _member(entry, "x", index), _member(entry, "y", index)
    size = _COORDINATE_BYTES[crv]
    if len(x) != size or len(y) != size:
        raise InvalidKeySet(f"key {index}: coordinates are not {size} bytes")
    try:
        # from the numbers, cryptography checks the point lies on the curve, which
        # closes off invalid-curve attacks.
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), _CURVES[crv]).public_key()
    except ValueError as err:
        raise InvalidKeySet(f"key {index}: not a point on {crv}") from err
