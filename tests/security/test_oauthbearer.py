"""The SASL/OAUTHBEARER exchange, server side, as a client like librdkafka drives it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from oauth_tokens import (
    claims,
    client_first_message,
    jwks_json,
    make_ec_key,
    sign_token,
    unsecured_token,
)

from broker.security.jwt import JwtValidator
from broker.security.oauthbearer import (
    MAX_MESSAGE_BYTES,
    MalformedMessage,
    OAuthBearerServer,
    parse_client_initial_response,
)
from broker.security.sasl_mechanism import AuthenticationFailed, SaslServer

pytestmark = pytest.mark.unit

NOW_MS = 1_800_000_000_000
KEY = make_ec_key("ec-1")
VALIDATOR = JwtValidator.from_jwks(jwks_json(KEY), clock_ms=lambda: NOW_MS)


def good_token(subject: str = "alice", **extra: Any) -> str:
    return sign_token(KEY, claims(subject, now_ms=NOW_MS, **extra))


def server(**options: Any) -> OAuthBearerServer:
    return OAuthBearerServer(VALIDATOR, **options)


def test_a_valid_token_authenticates_in_one_step() -> None:
    mechanism: SaslServer = server()
    assert mechanism.mechanism == "OAUTHBEARER"
    assert mechanism.evaluate(client_first_message(good_token())) == b""
    assert mechanism.complete
    assert mechanism.principal == "User:alice"
    assert mechanism.expires_at_ms == (NOW_MS // 1000 + 3600) * 1000


def test_a_refused_token_fails_after_the_error_json_is_acknowledged() -> None:
    mechanism = server()
    challenge = mechanism.evaluate(client_first_message(good_token(lifetime_s=-3600)))
    assert json.loads(challenge) == {"status": "invalid_token"}
    assert not mechanism.complete
    assert mechanism.failure_reason == "the token has expired"
    with pytest.raises(AuthenticationFailed, match="invalid_token"):
        mechanism.evaluate(b"\x01")
    assert not mechanism.complete


def test_the_error_json_advertises_scope_and_discovery_when_configured() -> None:
    mechanism = server(scope="kafka", openid_configuration="https://idp.example/.well-known/openid-configuration")
    challenge = mechanism.evaluate(client_first_message("not.a.jwt"))
    assert json.loads(challenge) == {
        "status": "invalid_token", "scope": "kafka",
        "openid-configuration": "https://idp.example/.well-known/openid-configuration"}


def test_anything_but_the_acknowledgement_after_an_error_fails() -> None:
    mechanism = server()
    mechanism.evaluate(client_first_message("not.a.jwt"))
    # A second token on the same exchange would let a client try tokens for free.
    with pytest.raises(AuthenticationFailed, match="expected"):
        mechanism.evaluate(client_first_message(good_token()))
    assert not mechanism.complete


def test_a_token_after_the_exchange_ends_fails_it() -> None:
    mechanism = server()
    mechanism.evaluate(client_first_message(good_token()))
    with pytest.raises(AuthenticationFailed, match="over"):
        mechanism.evaluate(client_first_message(good_token("mallory")))
    # the connection closes on the error, so the session it had is gone too
    assert not mechanism.complete


def test_an_authzid_other_than_the_subject_fails_at_once() -> None:
    mechanism = server()
    with pytest.raises(AuthenticationFailed, match="authorization id") as refused:
        mechanism.evaluate(client_first_message(good_token("alice"), authzid="admin"))
    assert "admin" not in str(refused.value)
    assert not mechanism.complete


def test_an_authzid_equal_to_the_subject_is_accepted() -> None:
    mechanism = server()
    mechanism.evaluate(client_first_message(good_token("a,b=c"), authzid="a,b=c"))
    assert mechanism.principal == "User:a,b=c"


def test_a_malformed_message_fails_at_once_without_echoing_the_token() -> None:
    mechanism = server()
    token = good_token()
    with pytest.raises(AuthenticationFailed, match="client first message") as refused:
        mechanism.evaluate(f"n,,\x01auth=Basic {token}\x01\x01".encode())
    assert token not in str(refused.value)
    assert token not in (mechanism.failure_reason or "")


def test_principal_is_unavailable_before_completion() -> None:
    with pytest.raises(RuntimeError):
        _ = server().principal


def test_extensions_are_parsed_and_kept() -> None:
    mechanism = server()
    message = client_first_message(good_token(), extensions={"traceId": "abc 123", "logicalCluster": "lkc-1"})
    mechanism.evaluate(message)
    assert mechanism.extensions == {"traceId": "abc 123", "logicalCluster": "lkc-1"}


def test_the_message_grammar() -> None:
    parsed = parse_client_initial_response(b"n,a=user=2Cx=3Dy,\x01host=h\x01auth=bearer  abc.def.\x01\x01")
    assert (parsed.token, parsed.authzid, parsed.extensions) == ("abc.def.", "user,x=y", {"host": "h"})
    parsed = parse_client_initial_response(b"y,,\x01auth=Bearer t\x01\x01")
    assert (parsed.token, parsed.authzid, parsed.extensions) == ("t", None, {})


@pytest.mark.parametrize("message", [
    b"",
    b"n,,\x01\x01",  # no auth
    b"n,,\x01auth=Bearer t\x01",  # not terminated by ^A^A
    b"n,,\x01auth=Bearer t",
    b"n,,auth=Bearer t\x01\x01",  # no ^A after the header
    b"p=tls-unique,,\x01auth=Bearer t\x01\x01",  # channel binding
    b"n,\x01auth=Bearer t\x01\x01",
    b"n,x=alice,\x01auth=Bearer t\x01\x01",
    b"n,a=,\x01auth=Bearer t\x01\x01",
    b"n,a=al=ice,\x01auth=Bearer t\x01\x01",  # a bare "=" in a saslname
    b"n,,\x01auth=Bearer\x01\x01",
    b"n,,\x01auth=Bearer t u\x01\x01",
    b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01",  # duplicate key
    b"n,,\x01auth=Bearer t\x01\x01\x01",  # an empty pair
    b"n,,\x01auth=Bearer t\x01trace-id=1\x01\x01",  # key outside [A-Za-z]
    b"n,,\x01auth=Bearer t\x01trace=\x01\x01",  # empty value
    b"n,,\x01auth=Bearer t\x01trace=\xc3\xa9\x01\x01",  # value outside printable ASCII
    b"n,,\x01auth=Bearer t\x01noequals\x01\x01",
    b"n,,\x01auth=Bearer t\xff\x01\x01",  # not UTF-8
    b"n,a=\xc3\x28,\x01auth=Bearer t\x01\x01",  # not UTF-8, in the authzid
])
def test_malformed_messages_are_refused(message: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_client_initial_response(message)
    with pytest.raises(AuthenticationFailed):
        server().evaluate(message)


def test_an_overlong_message_is_refused_before_it_is_read() -> None:
    token = "a" * MAX_MESSAGE_BYTES
    with pytest.raises(MalformedMessage, match="longer"):
        parse_client_initial_response(client_first_message(token))
    # a message just within the bound is read, and its junk token refused by the validator
    token = "a" * (MAX_MESSAGE_BYTES - len(client_first_message("")))
    assert len(client_first_message(token)) == MAX_MESSAGE_BYTES
    assert json.loads(server().evaluate(client_first_message(token)))["status"] == "invalid_token"


def test_unsecured_tokens_authenticate_only_when_allowed() -> None:
    token = unsecured_token(claims("alice", now_ms=NOW_MS))
    refusing = server()
    assert json.loads(refusing.evaluate(client_first_message(token)))["status"] == "invalid_token"
    testing = OAuthBearerServer(JwtValidator.from_jwks(
        '{"keys": []}', allow_unsecured=True, clock_ms=lambda: NOW_MS))
    testing.evaluate(client_first_message(token))
    assert testing.principal == "User:alice"
