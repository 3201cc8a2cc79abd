"""JWT validation for OAUTHBEARER: what a token must be for the broker to accept it."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from oauth_tokens import (
    SigningKey,
    b64url,
    claims,
    jwk,
    jwks_json,
    make_ec_key,
    make_rsa_key,
    sign_token,
    unsecured_token,
)

from broker.security.jwks import InvalidKeySet, KeySet
from broker.security.jwt import InvalidToken, JwtValidator

pytestmark = pytest.mark.unit

NOW_MS = 1_800_000_000_000
RSA = make_rsa_key("rsa-1")
OTHER_RSA = make_rsa_key("rsa-1")  # same kid, different key: an impostor
EC = {alg: make_ec_key(f"ec-{alg}", alg) for alg in ("ES256", "ES384", "ES512")}
JWKS = jwks_json(RSA, *EC.values())


def validator(jwks: str = JWKS, **options: Any) -> JwtValidator:
    options.setdefault("clock_ms", lambda: NOW_MS)
    return JwtValidator.from_jwks(jwks, **options)


def good_claims(subject: str | None = "alice", **extra: Any) -> dict[str, Any]:
    return claims(subject, now_ms=NOW_MS, **extra)


def refused(token: str, reason: str, **options: Any) -> None:
    with pytest.raises(InvalidToken, match=reason):
        validator(**options).validate(token)


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_an_rsa_signed_token_names_its_subject(alg: str) -> None:
    verified = validator().validate(sign_token(RSA, good_claims(), alg=alg))
    assert verified.principal == "User:alice"
    assert verified.expires_at_ms == (NOW_MS // 1000 + 3600) * 1000


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_an_ec_signed_token_names_its_subject(alg: str) -> None:
    assert validator().validate(sign_token(EC[alg], good_claims("bob"))).subject == "bob"


def test_a_token_from_another_key_with_the_same_kid_is_refused() -> None:
    refused(sign_token(OTHER_RSA, good_claims()), "signature does not verify")


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = sign_token(RSA, good_claims("alice")).split(".")
    forged = b64url(json.dumps(good_claims("admin")).encode())
    refused(f"{header}.{forged}.{signature}", "signature does not verify")


def test_an_rs256_signature_under_a_ps256_header_is_refused() -> None:
    _, payload, signature = sign_token(RSA, good_claims()).split(".")
    header = b64url(json.dumps({"alg": "PS256", "kid": "rsa-1"}).encode())
    refused(f"{header}.{payload}.{signature}", "signature does not verify")


def test_alg_none_is_refused_unless_unsecured_tokens_are_allowed() -> None:
    token = unsecured_token(good_claims())
    refused(token, "alg is not accepted")
    assert validator(allow_unsecured=True).validate(token).subject == "alice"


def test_a_token_stripped_of_its_signature_to_alg_none_is_refused() -> None:
    _, payload, _ = sign_token(RSA, good_claims()).split(".")
    header = b64url(json.dumps({"alg": "none", "kid": "rsa-1"}).encode())
    refused(f"{header}.{payload}.", "alg is not accepted")


def test_hs256_keyed_with_the_public_key_is_refused() -> None:
    # The confusion attack: the JWKS is public, so an HMAC keyed with it is forgeable.
    secret = json.dumps(jwk(RSA)).encode()
    header = b64url(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    payload = b64url(json.dumps(good_claims("admin")).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    refused(f"{header}.{payload}.{b64url(mac)}", "alg is not accepted")


def test_an_ec_key_cannot_verify_another_curves_alg() -> None:
    token = sign_token(EC["ES256"], good_claims(), header={"alg": "ES384"})
    refused(token, "no trusted key")


def test_an_unknown_kid_is_refused() -> None:
    refused(sign_token(RSA, good_claims(), header={"kid": "rotated-away"}), "no trusted key")


def test_without_a_kid_only_a_lone_key_is_used() -> None:
    lone = make_ec_key(kid=None)
    token = sign_token(lone, good_claims())
    assert validator(jwks_json(lone)).validate(token).subject == "alice"
    refused(token, "no trusted key", jwks=jwks_json(lone, make_ec_key("ec-2")))


def test_a_key_pinned_to_one_alg_verifies_no_other() -> None:
    pinned = json.dumps({"keys": [jwk(RSA, with_alg=True)]})
    assert validator(pinned).validate(sign_token(RSA, good_claims())).subject == "alice"
    refused(sign_token(RSA, good_claims(), alg="RS512"), "no trusted key", jwks=pinned)


def test_an_ec_signature_in_der_form_is_refused() -> None:
    header = b64url(json.dumps({"alg": "ES256", "kid": "ec-ES256"}).encode())
    payload = b64url(json.dumps(good_claims()).encode())
    key = EC["ES256"].private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    refused(f"{header}.{payload}.{b64url(der)}", "signature does not verify")


def test_an_expired_token_is_refused() -> None:
    refused(sign_token(RSA, good_claims(lifetime_s=-3600)), "expired")


def test_a_token_without_exp_is_refused() -> None:
    payload = good_claims()
    del payload["exp"]
    refused(sign_token(RSA, payload), "no exp")


def test_a_token_not_valid_yet_is_refused() -> None:
    refused(sign_token(RSA, good_claims(nbf=NOW_MS // 1000 + 60)), "not valid yet")


def test_a_token_issued_in_the_future_is_refused() -> None:
    refused(sign_token(RSA, good_claims(iat=NOW_MS // 1000 + 60)), "issued in the future")


def test_the_clock_skew_is_allowed_up_to_its_edge() -> None:
    skew_s = 30
    exp_s = NOW_MS // 1000
    expired_by_skew = sign_token(RSA, good_claims(exp=exp_s - skew_s))
    within_skew = sign_token(RSA, good_claims(exp=exp_s - skew_s + 1))
    refused(expired_by_skew, "expired")
    assert validator().validate(within_skew).expires_at_ms == (exp_s - skew_s + 1) * 1000
    refused(within_skew, "expired", clock_skew_seconds=0)
    early = sign_token(RSA, good_claims(nbf=exp_s + skew_s, iat=exp_s + skew_s))
    assert validator().validate(early).subject == "alice"
    refused(early, "not valid yet", clock_skew_seconds=skew_s - 1)


def test_the_issuer_must_be_the_expected_one_when_configured() -> None:
    token = sign_token(RSA, good_claims(iss="https://idp.example"))
    assert validator(expected_issuer="https://idp.example").validate(token).subject == "alice"
    refused(token, "issuer", expected_issuer="https://other.example")
    refused(sign_token(RSA, good_claims()), "issuer", expected_issuer="https://idp.example")


@pytest.mark.parametrize("aud", ["walrus", ["billing", "walrus"]])
def test_the_audience_must_include_an_expected_one_when_configured(aud: str | list[str]) -> None:
    token = sign_token(RSA, good_claims(aud=aud))
    assert validator(expected_audience="walrus").validate(token).subject == "alice"
    assert validator(expected_audience=["kafka", "walrus"]).validate(token).subject == "alice"
    refused(token, "audience", expected_audience=["kafka"])


def test_a_token_without_aud_is_refused_when_an_audience_is_expected() -> None:
    refused(sign_token(RSA, good_claims()), "audience", expected_audience="walrus")


@pytest.mark.parametrize("subject", [None, "", "  ", 42])
def test_a_token_without_a_subject_string_is_refused(subject: object) -> None:
    payload = good_claims(None)
    if subject is not None:
        payload["sub"] = subject
    refused(sign_token(RSA, payload), "no sub claim")


def test_the_principal_comes_from_the_configured_claim() -> None:
    token = sign_token(RSA, good_claims("uuid-1234", preferred_username="carol"))
    assert validator(subject_claim="preferred_username").validate(token).principal == "User:carol"


def test_scope_is_read_as_a_string_or_a_list() -> None:
    assert validator().validate(sign_token(RSA, good_claims(scope="read write"))).scope == ("read", "write")
    assert validator().validate(sign_token(RSA, good_claims(scope=["read"]))).scope == ("read",)


@pytest.mark.parametrize("token", [
    "",
    "a.b",
    "a.b.c.d",
    "eyJhbGciOiJSUzI1NiJ9+.e30.AA",  # "+" is base64, not base64url
    "eyJhbGciOiJSUzI1NiJ9=.e30.AA",  # padding
    "e.e30.AA",  # an impossible base64 length
    b64url(b"not json") + ".e30.AA",
    b64url(b'["alg", "RS256"]') + ".e30.AA",
    b64url(b'{"alg":"RS256","alg":"none"}') + ".e30.AA",
    b64url(b"\xff\xfe") + ".e30.AA",
    "ey\u00e9.e30.AA",
])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        validator().validate(token)


@pytest.mark.parametrize("exp", ["2030-01-01", True, None, [1]])
def test_exp_must_be_a_number(exp: object) -> None:
    payload = good_claims()
    payload["exp"] = exp
    with pytest.raises(InvalidToken):
        validator().validate(sign_token(RSA, payload))


def test_non_finite_numbers_are_not_json() -> None:
    header = b64url(json.dumps({"alg": "none"}).encode())
    payload = b64url(b'{"sub":"alice","exp":Infinity}')
    with pytest.raises(InvalidToken, match="payload"):
        validator(allow_unsecured=True).validate(f"{header}.{payload}.")


def test_critical_header_extensions_are_refused() -> None:
    refused(sign_token(RSA, good_claims(), header={"crit": ["exp"], "exp": 1}), "critical")


def test_unsecured_tokens_still_need_exp_sub_and_no_signature() -> None:
    unsecured = {"allow_unsecured": True}
    refused(unsecured_token(good_claims(lifetime_s=-60)), "expired", **unsecured)
    refused(unsecured_token(good_claims(None)), "no sub", **unsecured)
    refused(unsecured_token(good_claims()) + "AAAA", "carries a signature", **unsecured)


def test_signed_tokens_are_still_verified_when_unsecured_ones_are_allowed() -> None:
    refused(sign_token(OTHER_RSA, good_claims()), "signature", allow_unsecured=True)


def test_a_new_validator_picks_up_a_rotated_key_set() -> None:
    rotated = make_ec_key("ec-next")
    token = sign_token(rotated, good_claims())
    refused(token, "no trusted key")
    assert validator(jwks_json(RSA, rotated)).validate(token).subject == "alice"


def test_the_key_set_skips_keys_it_cannot_use() -> None:
    document = json.dumps({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        jwk(EC["ES256"], use="enc"),
        jwk(EC["ES384"], use=None, key_ops=["encrypt"]),
        jwk(make_rsa_key("enc"), use=None, alg="RSA-OAEP"),
        jwk(RSA),
    ]})
    assert [key.kid for key in KeySet.from_json(document).keys] == ["rsa-1"]


def _short_rsa() -> SigningKey:
    return SigningKey("short", "RS256", rsa.generate_private_key(65537, 1024))


@pytest.mark.parametrize("document", [
    "not json",
    "[]",
    '{"keys": {}}',
    '{"keys": ["x"]}',
    '{"keys": [{"kty": "RSA", "n": "AQAB"}]}',
    json.dumps({"keys": [jwk(EC["ES256"], y=jwk(EC["ES256"])["x"])]}),  # off the curve
    json.dumps({"keys": [jwk(EC["ES256"], crv="P-192")]}),
    json.dumps({"keys": [jwk(EC["ES256"], alg="RS256")]}),
])
def test_a_malformed_key_set_is_refused_at_load(document: str) -> None:
    with pytest.raises(InvalidKeySet):
        KeySet.from_json(document)


def test_rsa_keys_shorter_than_2048_bits_are_refused_at_load() -> None:
    with pytest.raises(InvalidKeySet, match="2048"):
        KeySet.from_json(jwks_json(_short_rsa()))


def test_fractional_numeric_dates_are_accepted() -> None:
    # RFC 7519 2: a NumericDate may carry fractions of a second, and some clients'
    # unsecured tokens do.
    exp = NOW_MS / 1000 + 0.5
    token = unsecured_token({"sub": "alice", "iat": NOW_MS / 1000 - 0.25, "exp": exp})
    assert validator(allow_unsecured=True).validate(token).expires_at_ms == NOW_MS + 500
