"""Validation of a JWS-signed JWT access token (RFC 7515, 7519) against a trusted key set,
as Kafka's broker does for SASL/OAUTHBEARER (KIP-768).

Checks, in order: the compact form (three base64url parts, JSON objects), the header's
"alg" against an allowlist of asymmetric algorithms, the key its "kid" names, the
signature, then the claims: "exp" required and not passed, "nbf" and "iat" not in the
future, "iss" and "aud" when the broker expects them, and the claim naming the principal.
Times allow `clock_skew_seconds` of disagreement between the broker's clock and the
issuer's, as Kafka's `sasl.oauthbearer.clock.skew.seconds` does.

Failures are `InvalidToken` with a reason that names the check, never the token or a
claim's value, so the broker may log it.

Unsecured tokens (alg "none", an empty signature; Kafka's test-only unsecured JWS) pass
only with `allow_unsecured=True`. Anyone can mint one for any subject, so the option is for
tests and must never be on in production; the broker's configuration defaults it off.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broker.security.jwks import KeySet, PublicKey, b64url_decode, coordinate_bytes

DEFAULT_CLOCK_SKEW_SECONDS = 30  # Kafka's sasl.oauthbearer.clock.skew.seconds
DEFAULT_SUBJECT_CLAIM = "sub"  # Kafka's sasl.oauthbearer.sub.claim.name
UNSECURED_ALG = "none"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
# Asymmetric only: an HS* token would be checked with a public key as its HMAC secret,
# which anyone holding the JWKS could forge (the classic algorithm-confusion attack).
SIGNED_ALGS = frozenset(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in _HASHES)


_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class InvalidToken(Exception):
    """The token is not acceptable. The message names the failed check and holds nothing
    from the token, so it may be logged."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    expires_at_ms: int
    issued_at_ms: int | None
    scope: tuple[str, ...]
    # Every claim as the issuer wrote it, for a future authorizer that reads claims.
    claims: dict[str, Any]

    @property
    def principal(self) -> str:
        return f"User:{self.subject}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class JwtValidator:
    """Validates tokens against one key set and one set of expectations. Immutable: to
    reload the JWKS, build a new validator and swap it in."""

    def __init__(
        self,
        key_set: KeySet,
        *,
        expected_issuer: str | None = None,
        expected_audience: str | Iterable[str] | None = None,
        subject_claim: str = DEFAULT_SUBJECT_CLAIM,
        clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
        clock_ms: Callable[[], int] = _now_ms,
        allow_unsecured: bool = False,
    ) -> None:
        if clock_skew_seconds < 0:
            raise ValueError("clock_skew_seconds must not be negative")
        if not subject_claim:
            raise ValueError("subject_claim must name a claim")
        self._key_set = key_set
        self._issuer = expected_issuer
        if isinstance(expected_audience, str):
            expected_audience = (expected_audience,)
        self._audience = frozenset(expected_audience) if expected_audience is not None else None
        if self._audience is not None and not self._audience:
            raise ValueError("expected_audience must hold at least one audience")
        self._subject_claim = subject_claim
        self._skew_ms = clock_skew_seconds * 1000
        self._clock_ms = clock_ms
        self._allow_unsecured = allow_unsecured

    @classmethod
    def from_jwks(
        cls,
        document: str | bytes,
        *,
        expected_issuer: str | None = None,
        expected_audience: str | Iterable[str] | None = None,
        subject_claim: str = DEFAULT_SUBJECT_CLAIM,
        clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
        clock_ms: Callable[[], int] = _now_ms,
        allow_unsecured: bool = False,
    ) -> JwtValidator:
        """A validator for the keys in a JWKS document (its text, read by the caller).
        Raises InvalidKeySet."""
        return cls(KeySet.from_json(document), expected_issuer=expected_issuer,
                   expected_audience=expected_audience, subject_claim=subject_claim,
                   clock_skew_seconds=clock_skew_seconds, clock_ms=clock_ms,
                   allow_unsecured=allow_unsecured)

    def validate(self, token: str) -> VerifiedToken:
        if not _COMPACT.fullmatch(token):
            raise InvalidToken("not a JWS compact serialization")
        encoded_header, encoded_payload, encoded_signature = token.split(".")
        header = _json_object(encoded_header, "header")
        alg = header.get("alg")
        if "crit" in header:
            # RFC 7515 4.1.11: extensions we do not understand must fail the token.
            raise InvalidToken("the header names critical extensions")
        if alg == UNSECURED_ALG and self._allow_unsecured:
            if encoded_signature:
                raise InvalidToken("an unsecured token carries a signature")
        elif alg in SIGNED_ALGS:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise InvalidToken("the kid is not a string")
            try:
                signature = b64url_decode(encoded_signature)
            except ValueError:
                raise InvalidToken("the signature is not base64url") from None
            signing_input = f"{encoded_header}.{encoded_payload}".encode("ascii")
            keys = self._key_set.candidates(kid, alg)
            if not keys:
                raise InvalidToken("no trusted key for the token's kid and alg")
            if not any(_verifies(key.public_key, alg, signature, signing_input) for key in keys):
                raise InvalidToken("the signature does not verify")
        else:
            raise InvalidToken("the alg is not accepted")
        # The payload is read only once the signature holds, so an attacker's JSON never
        # reaches anything but the header parser before we trust it.
        return self._check_claims(_json_object(encoded_payload, "payload"))

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        now = self._clock_ms()
        exp = _numeric_date_ms(claims, "exp")
        if exp is None:
            raise InvalidToken("the token has no exp")
        # RFC 7519 4.1.4: now must be before exp; the skew extends that edge.
        if now >= exp + self._skew_ms:
            raise InvalidToken("the token has expired")
        nbf = _numeric_date_ms(claims, "nbf")
        if nbf is not None and now < nbf - self._skew_ms:
            raise InvalidToken("the token is not valid yet")
        iat = _numeric_date_ms(claims, "iat")
        if iat is not None and iat > now + self._skew_ms:
            raise InvalidToken("the token was issued in the future")
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise InvalidToken("the token's issuer is not the expected one")
        if self._audience is not None and not self._audience & _audiences(claims):
            raise InvalidToken("the token is not for an expected audience")
        subject = claims.get(self._subject_claim)
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidToken(f"the token has no {self._subject_claim} claim naming the principal")
        return VerifiedToken(subject, exp, iat, _scope(claims), claims)


def _json_object(encoded: str, what: str) -> dict[str, Any]:
    try:
        raw = b64url_decode(encoded)
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise InvalidToken(f"the {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"the {what} is not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal names wins; a token that relies on that is
    # refused rather than read one way here and another way by the issuer.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 6); Python's parser accepts them by default.
    raise ValueError(f"{name} is not JSON")


def _numeric_date_ms(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int to Python, never a date to JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the {name} claim is not a NumericDate")
    try:
        return int(value * 1000)
    except OverflowError:
        raise InvalidToken(f"the {name} claim is not a NumericDate") from None


def _audiences(claims: dict[str, Any]) -> frozenset[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return frozenset((aud,))
    if isinstance(aud, list):
        return frozenset(a for a in aud if isinstance(a, str))
    return frozenset()


def _scope(claims: dict[str, Any]) -> tuple[str, ...]:
    # RFC 8693 4.2: a space-separated string; some issuers send a list.
    scope = claims.get("scope")
    if isinstance(scope, str):
        return tuple(scope.split())
    if isinstance(scope, list):
        return tuple(s for s in scope if isinstance(s, str))
    return ()


def _verifies(key: PublicKey, alg: str, signature: bytes, signing_input: bytes) -> bool:
    hash_algorithm = _HASHES[alg[2:]]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if alg.startswith("PS"):
                # RFC 7518 3.5: the salt is as long as the hash; no other length is valid.
                pss = padding.PSS(mgf=padding.MGF1(hash_algorithm),
                                  salt_length=hash_algorithm.digest_size)
                key.verify(signature, signing_input, pss, hash_algorithm)
            else:
                key.verify(signature, signing_input, padding.PKCS1v15(), hash_algorithm)
        else:
            # JWS carries r || s at fixed width (RFC 7518 3.4); cryptography wants DER.
            size = coordinate_bytes(key)
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_algorithm))
    except InvalidSignature:
        return False
    return True
