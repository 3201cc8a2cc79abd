"""SASL/OAUTHBEARER, server side (RFC 7628; Kafka's KIP-255, extensions from KIP-342).

The client's one message, with ^A for the byte 0x01:

    n,[a=<authzid>],^Aauth=Bearer <token>^A[<key>=<value>^A ...]^A

A token the validator refuses does not end the exchange at once: as RFC 7628 3.2.2 asks,
and Kafka does, the server answers with an error JSON ({"status":"invalid_token"}), the
client acknowledges it with a lone ^A, and only then does the server fail. A message that
is not OAUTHBEARER at all, or an authzid other than the token's subject, fails at once, as
in Kafka.

States (nothing else changes them):

    INITIAL     --valid token------------>  COMPLETE
    INITIAL     --refused token---------->  ERROR_SENT  (returns the error JSON)
    ERROR_SENT  --^A--------------------->  FAILED      (raises)
    any other token, or malformed input  ->  FAILED      (raises)

The token is never logged or put in an error; why it was refused is kept in
`failure_reason` for the broker's log, and the client learns only "invalid_token", as
from Kafka.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Protocol

from broker.security.jwt import InvalidToken, VerifiedToken
from broker.security.sasl_mechanism import AuthenticationFailed

MECHANISM = "OAUTHBEARER"
# A JWT with a few hundred claims is a few KiB; 64 KiB leaves room for any real token and
# bounds what one unauthenticated client makes the broker decode.
MAX_MESSAGE_BYTES = 64 * 1024

_SEPARATOR = "\x01"
# RFC 7628 3.1 with Kafka's character classes (OAuthBearerClientInitialResponse).
_KEY = re.compile(r"[A-Za-z]+")
_VALUE = re.compile(r"[\x21-\x7e \t\r\n]+")
# RFC 6750 2.1 b64token after the scheme, which is matched without regard to case.
_AUTH = re.compile(r"([A-Za-z]+) +([A-Za-z0-9._~+/-]+=*)")
# RFC 5801 saslname: "," and "=" travel as =2C and =3D, and a bare "=" is malformed.
_SASLNAME = re.compile(r"(?:[^\x00,=]|=2C|=3D)+")
_AUTH_KEY = "auth"


class TokenValidator(Protocol):
    """What the mechanism needs from token validation: JwtValidator, or a stand-in."""

    def validate(self, token: str) -> VerifiedToken: ...


@dataclass(frozen=True, slots=True)
class ClientInitialResponse:
    token: str
    authzid: str | None
    # Kafka's SASL extensions (KIP-342): unsigned, so informative only, never trusted.
    extensions: dict[str, str]


class MalformedMessage(ValueError):
    """The client's message does not follow RFC 7628's grammar."""


def parse_client_initial_response(message: bytes) -> ClientInitialResponse:
    if len(message) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"longer than {MAX_MESSAGE_BYTES} bytes")
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("not UTF-8") from None
    # header ^A pair ^A ... pair ^A ^A: the split ends with two empty strings.
    parts = text.split(_SEPARATOR)
    if len(parts) < 3 or parts[-1] or parts[-2]:
        raise MalformedMessage("not terminated by ^A^A")
    authzid = _gs2_authzid(parts[0])
    pairs: dict[str, str] = {}
    for pair in parts[1:-2]:
        key, equals, value = pair.partition("=")
        if not equals or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            raise MalformedMessage("a key=value pair breaks the grammar")
        if key in pairs:
            raise MalformedMessage("a key appears twice")
        pairs[key] = value
    auth = pairs.pop(_AUTH_KEY, None)
    if auth is None:
        raise MalformedMessage("no auth key")
    match = _AUTH.fullmatch(auth)
    if match is None:
        raise MalformedMessage("the auth value is not <scheme> <token>")
    if match[1].lower() != "bearer":
        raise MalformedMessage("the auth scheme is not Bearer")
    return ClientInitialResponse(match[2], authzid, pairs)


def _gs2_authzid(header: str) -> str | None:
    # gs2-header = cb-flag "," [ "a=" saslname ] "," . OAUTHBEARER has no channel binding:
    # "n" (client does not support it) and "y" (client thinks the server does not) are
    # fine, "p=" (binding required) cannot be honoured.
    flag, _, rest = header.partition(",")
    if flag not in ("n", "y") or not rest.endswith(","):
        raise MalformedMessage("the GS2 header is malformed")
    authzid = rest[:-1]
    if not authzid:
        return None
    if not authzid.startswith("a=") or not _SASLNAME.fullmatch(authzid[2:]):
        raise MalformedMessage("the GS2 header is malformed")
    return authzid[2:].replace("=2C", ",").replace("=3D", "=")


class _State(enum.Enum):
    INITIAL = enum.auto()
    ERROR_SENT = enum.auto()
    COMPLETE = enum.auto()
    FAILED = enum.auto()


class OAuthBearerServer:
    """One OAUTHBEARER authentication, server side (a `SaslServer`)."""

    def __init__(self, validator: TokenValidator, *, scope: str | None = None,
                 openid_configuration: str | None = None) -> None:
        """`scope` and `openid_configuration` (a URL) are advertised in the error JSON,
        telling a client which scope to ask for and where to discover the issuer."""
        self._validator = validator
        self._error = {"status": "invalid_token"}
        if scope is not None:
            self._error["scope"] = scope
        if openid_configuration is not None:
            self._error["openid-configuration"] = openid_configuration
        self._state = _State.INITIAL
        self._token: VerifiedToken | None = None
        self._extensions: dict[str, str] = {}
        self.failure_reason: str | None = None

    @property
    def mechanism(self) -> str:
        return MECHANISM

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    @property
    def principal(self) -> str:
        return self._verified().principal

    @property
    def expires_at_ms(self) -> int | None:
        """The token's exp. A token accepted within the clock skew after its exp gives a
        time already past: the session it opens should be as short as the broker allows."""
        return self._verified().expires_at_ms

    @property
    def token(self) -> VerifiedToken:
        """The validated token's claims, for an authorizer that reads them."""
        return self._verified()

    @property
    def extensions(self) -> dict[str, str]:
        """The client's SASL extensions: unsigned, so never evidence of anything."""
        return dict(self._extensions)

    def evaluate(self, token: bytes) -> bytes:
        state = self._state
        self._state = _State.FAILED  # until a step below says otherwise
        if state is _State.INITIAL:
            return self._first(token)
        if state is _State.ERROR_SENT:
            if token == _SEPARATOR.encode():
                raise AuthenticationFailed("OAUTHBEARER authentication failed: invalid_token")
            self.failure_reason = "the client did not acknowledge the error with ^A"
            raise AuthenticationFailed(
                "OAUTHBEARER authentication failed: expected ^A after the error response")
        raise AuthenticationFailed("OAUTHBEARER: the exchange is already over")

    def _first(self, message: bytes) -> bytes:
        try:
            response = parse_client_initial_response(message)
        except MalformedMessage as e:
            self.failure_reason = f"invalid client first message: {e}"
            raise AuthenticationFailed(f"Invalid OAUTHBEARER client first message: {e}") from None
        try:
            verified = self._validator.validate(response.token)
        except InvalidToken as e:
            self.failure_reason = str(e)
            self._state = _State.ERROR_SENT
            return json.dumps(self._error, separators=(",", ":")).encode()
        if response.authzid is not None and response.authzid != verified.subject:
            # Nothing from the token in the message: the client knows what it sent.
            self.failure_reason = "the authzid is not the token's subject"
            raise AuthenticationFailed(
                "OAUTHBEARER authentication failed: the authorization id is not the token's subject")
        self._token = verified
        self._extensions = response.extensions
        self._state = _State.COMPLETE
        return b""

    def _verified(self) -> VerifiedToken:
        if self._state is not _State.COMPLETE or self._token is None:
            raise RuntimeError("the OAUTHBEARER exchange has not completed")
        return self._token
