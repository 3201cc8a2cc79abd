"""Minting OAUTHBEARER tokens for tests: keys, the JWKS that publishes them, signed JWTs,
Kafka-style unsecured JWTs, and the client's first SASL message.

For unit tests here and for compat tests that hand a token to a real client
(confluent-kafka's `oauth_cb`, KafkaJS's `oauthBearerProvider`) while the broker reads the
JWKS from `jwks_json(...)`:

    key = make_rsa_key()
    broker_jwks = jwks_json(key)
    token = sign_token(key, claims("alice"))
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVE_FOR_ALG: dict[str, tuple[ec.EllipticCurve, str, int]] = {
    "ES256": (ec.SECP256R1(), "P-256", 32),
    "ES384": (ec.SECP384R1(), "P-384", 48),
    "ES512": (ec.SECP521R1(), "P-521", 66),
}


@dataclass(frozen=True)
class SigningKey:
    """A private key, the kid it is published under, and the alg it signs with."""

    kid: str | None
    alg: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_rsa_key(kid: str | None = "rsa-1", alg: str = "RS256", bits: int = 2048) -> SigningKey:
    """An RSA key for RS256/384/512 or PS256/384/512. Generating one takes tens of
    milliseconds: share it across a module's tests."""
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def make_ec_key(kid: str | None = "ec-1", alg: str = "ES256") -> SigningKey:
    """An EC key on the curve `alg` calls for (ES256: P-256, ES384: P-384, ES512: P-521)."""
    return SigningKey(kid, alg, ec.generate_private_key(_CURVE_FOR_ALG[alg][0]))


def jwk(key: SigningKey, *, with_alg: bool = False, **extra: Any) -> dict[str, Any]:
    """The public JWK for `key`; `with_alg` pins the alg, `extra` adds or overrides members
    (None removes one)."""
    public = key.private_key.public_key()
    entry: dict[str, Any]
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        entry = {"kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
    else:
        _, crv, size = _CURVE_FOR_ALG[key.alg]
        point = public.public_numbers()
        entry = {"kty": "EC", "crv": crv, "x": b64url(point.x.to_bytes(size, "big")),
                 "y": b64url(point.y.to_bytes(size, "big"))}
    entry["use"] = "sig"
    if key.kid is not None:
        entry["kid"] = key.kid
    if with_alg:
        entry["alg"] = key.alg
    entry.update(extra)
    return {name: value for name, value in entry.items() if value is not None}


def jwks_json(*keys: SigningKey) -> str:
    """A JWKS document publishing the public halves of `keys`."""
    return json.dumps({"keys": [jwk(key) for key in keys]})


def claims(subject: str | None = "alice", *, lifetime_s: float = 3600, now_ms: int | None = None,
           **extra: Any) -> dict[str, Any]:
    """sub, iat and exp (lifetime_s after now), plus `extra` (iss, aud, scope, ...). A
    subject of None leaves sub out."""
    now_s = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) // 1000
    result: dict[str, Any] = {"iat": now_s, "exp": now_s + lifetime_s}
    if subject is not None:
        result["sub"] = subject
    result.update(extra)
    return result


def sign_token(key: SigningKey, payload: dict[str, Any], *, header: dict[str, Any] | None = None,
               alg: str | None = None) -> str:
    """A compact JWS of `payload` signed by `key` with `alg` (default the key's). `header`
    adds or overrides members of the header that is signed, e.g. {"kid": "other"}."""
    alg = alg or key.alg
    full_header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if key.kid is not None:
        full_header["kid"] = key.kid
    full_header.update(header or {})
    signing_input = f"{_encode_json(full_header)}.{_encode_json(payload)}"
    return f"{signing_input}.{b64url(_sign(key, alg, signing_input.encode('ascii')))}"


def unsecured_token(payload: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
    """Kafka's unsecured JWS: alg "none" and an empty signature."""
    return f"{_encode_json({'alg': 'none', **(header or {})})}.{_encode_json(payload)}."


def client_first_message(token: str, *, authzid: str | None = None,
                         extensions: dict[str, str] | None = None) -> bytes:
    """The OAUTHBEARER client's initial response (RFC 7628 3.1) carrying `token`."""
    gs2 = "n,,"
    if authzid is not None:
        gs2 = "n,a=" + authzid.replace("=", "=3D").replace(",", "=2C") + ","
    pairs = [f"auth=Bearer {token}"] + [f"{k}={v}" for k, v in (extensions or {}).items()]
    return ("\x01".join([gs2, *pairs]) + "\x01\x01").encode("utf-8")


def _sign(key: SigningKey, alg: str, data: bytes) -> bytes:
    hash_algorithm = _HASHES[alg[2:]]()
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        if alg.startswith("PS"):
            return private.sign(data, padding.PSS(mgf=padding.MGF1(hash_algorithm),
                                                  salt_length=hash_algorithm.digest_size),
                                hash_algorithm)
        return private.sign(data, padding.PKCS1v15(), hash_algorithm)
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hash_algorithm)))
    size = _CURVE_FOR_ALG[key.alg][2]
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _encode_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
