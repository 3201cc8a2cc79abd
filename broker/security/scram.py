"""SCRAM-SHA-256 and SCRAM-SHA-512, server side (RFC 5802, RFC 7677), as Kafka speaks it
(KIP-84), and the credentials it checks against.

The broker stores, per user and mechanism, only what RFC 5802 lets a server keep: the
salt, the iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
ServerKey = HMAC(SaltedPassword, "Server Key"). Neither the password nor SaltedPassword
is kept, so a leaked store does not let anyone log in directly (it still permits an
offline guess of weak passwords, as with any SCRAM store).

Kafka's flavour of the exchange: no channel binding (a client asking for it with `p=`
is refused), an authzid, if sent, must be the user name, extensions after the nonce
are allowed and ignored except `tokenauth=true` (a delegation-token login, which this
broker does not offer), and passwords are taken as their UTF-8 bytes without SASLprep,
as Kafka's own clients send them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from broker.security.sasl_mechanism import AuthenticationFailed

# Mechanism name -> hashlib name of its hash.
MECHANISMS: dict[str, str] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
# Kafka's ScramMechanism type codes, as DescribeUserScramCredentials and
# AlterUserScramCredentials carry them (0 is UNKNOWN).
MECHANISM_CODES: dict[str, int] = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
MECHANISMS_BY_CODE: dict[int, str] = {code: name for name, code in MECHANISM_CODES.items()}
# Kafka's bounds for both mechanisms: fewer iterations make guessing cheap, more make
# every login (and so a login flood) expensive for the broker.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
# A client-first message is a user name and a nonce, a client-final one a nonce and a
# proof: a few hundred bytes. Anything much longer is refused before it is parsed.
MAX_MESSAGE_BYTES = 4096


def hash_name(mechanism: str) -> str:
    """The hashlib name behind a mechanism; ValueError for one that is not SCRAM here."""
    try:
        return MECHANISMS[mechanism]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}") from None


def digest_size(mechanism: str) -> int:
    return hashlib.new(hash_name(mechanism)).digest_size


@dataclass(frozen=True, slots=True, repr=False)
class ScramCredential:
    """What the server keeps for one user and mechanism."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def __repr__(self) -> str:
        # The keys are not the password, but they let anyone who reads them pose as the
        # server and guess the password offline: they stay out of logs.
        return f"ScramCredential(iterations={self.iterations}, salt={len(self.salt)} bytes)"


# ---------------------------------------------------------------- primitives (RFC 5802 §3)


def salted_password(hash_fn: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i): PBKDF2 with HMAC-H and one block of output."""
    return hashlib.pbkdf2_hmac(hash_fn, password, salt, iterations)


def hmac_of(hash_fn: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hash_fn).digest()


def client_key(hash_fn: str, salted: bytes) -> bytes:
    return hmac_of(hash_fn, salted, b"Client Key")


def stored_key(hash_fn: str, key: bytes) -> bytes:
    return hashlib.new(hash_fn, key).digest()


def server_key(hash_fn: str, salted: bytes) -> bytes:
    return hmac_of(hash_fn, salted, b"Server Key")


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def check_iterations(iterations: object) -> None:
    if type(iterations) is not int or not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be an integer from {MIN_ITERATIONS} to {MAX_ITERATIONS}")


def credential_from_salted_password(
    mechanism: str, salted: bytes, salt: bytes, iterations: int
) -> ScramCredential:
    """The credential for a SaltedPassword computed by the client (AlterUserScramCredentials
    sends that, never the password)."""
    fn = hash_name(mechanism)
    check_iterations(iterations)
    if not salt:
        raise ValueError("the salt must not be empty")
    if len(salted) != hashlib.new(fn).digest_size:
        raise ValueError(f"a {mechanism} salted password is {hashlib.new(fn).digest_size} bytes")
    return ScramCredential(bytes(salt), stored_key(fn, client_key(fn, salted)),
                           server_key(fn, salted), iterations)


def derive(mechanism: str, password: str, salt: bytes, iterations: int) -> ScramCredential:
    """The credential for a password (an operator's bootstrap file, tests)."""
    check_iterations(iterations)
    salted = salted_password(hash_name(mechanism), password.encode(), salt, iterations)
    return credential_from_salted_password(mechanism, salted, salt, iterations)


# ------------------------------------------------------------------------- the exchange

# The same answer for an unknown user and a wrong password (Kafka's wording), so that the
# error does not tell which user names exist.
_BAD_CREDENTIALS = "Authentication failed during authentication due to invalid credentials with SASL mechanism {}"

# Unknown users get a made-up salt derived from their name with this process's key: the
# exchange then runs to the proof like a real one and the same name always sees the same
# salt, so neither the error nor the server-first message tells a probe the user is missing.
_DECOY_KEY = secrets.token_bytes(32)
_DECOY_SALT_BYTES = 24


def new_nonce() -> str:
    """The server's part of the nonce: 32 URL-safe base64 characters (printable, no comma)."""
    return secrets.token_urlsafe(24)


def escape_saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_saslname(value: str) -> str:
    """RFC 5802's saslname: "," travels as "=2C" and "=" as "=3D"; any other "=" is malformed."""
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "=":
            code = value[i + 1:i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise AuthenticationFailed("malformed SCRAM message: bad escape in a name")
            i += 3
        else:
            out.append(ch)
            i += 1
    if not out:
        raise AuthenticationFailed("malformed SCRAM message: empty name")
    return "".join(out)


def _printable(value: str) -> bool:
    # RFC 5802 `printable`: %x21-2B / %x2D-7E (no comma)
    return bool(value) and all("\x21" <= ch <= "\x7e" and ch != "," for ch in value)


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuthenticationFailed(f"malformed SCRAM message: {what} is not base64") from None


def _extensions(attrs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for attr in attrs:
        key, eq, value = attr.partition("=")
        if not eq or not key.isascii() or not key.isalpha():
            raise AuthenticationFailed("malformed SCRAM message: bad extension")
        out[key] = value
    return out


class ScramServer:
    """One SCRAM exchange, server side: client-first -> server-first, client-final ->
    server-final. Implements broker.security.sasl_mechanism.SaslServer.

    `lookup(username)` returns the user's credential for this mechanism, or None;
    `nonce()` gives the server's nonce part (tests pin it to replay RFC vectors)."""

    def __init__(
        self,
        mechanism: str,
        lookup: Callable[[str], ScramCredential | None],
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._mechanism = mechanism
        self._hash = hash_name(mechanism)
        self._digest_size = hashlib.new(self._hash).digest_size
        self._lookup = lookup
        self._new_nonce = nonce
        self._stage = "first"  # first -> final -> complete, or failed from either
        self._username = ""
        self._credential: ScramCredential | None = None
        self._known_user = False
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    @property
    def mechanism(self) -> str:
        return self._mechanism

    @property
    def complete(self) -> bool:
        return self._stage == "complete"

    @property
    def principal(self) -> str:
        if not self.complete:
            raise RuntimeError("no principal before the exchange completes")
        return f"User:{self._username}"

    @property
    def expires_at_ms(self) -> int | None:
        return None

    def evaluate(self, token: bytes) -> bytes:
        stage = self._stage
        try:
            if stage == "first":
                return self._client_first(self._text(token))
            if stage == "final":
                return self._client_final(self._text(token))
        except AuthenticationFailed:
            self._stage = "failed"
            self._credential = None
            raise
        self._stage = "failed"
        raise AuthenticationFailed("the SCRAM exchange is already over")

    @staticmethod
    def _text(token: bytes) -> str:
        if len(token) > MAX_MESSAGE_BYTES:
            raise AuthenticationFailed(f"SCRAM message longer than {MAX_MESSAGE_BYTES} bytes")
        try:
            text = bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed SCRAM message: not UTF-8") from None
        if "\x00" in text:
            raise AuthenticationFailed("malformed SCRAM message: NUL character")
        return text

    def _client_first(self, text: str) -> bytes:
        # gs2-header: cbind-flag "," [authzid] ","
        if text.startswith("p="):
            raise AuthenticationFailed("SCRAM channel binding is not supported")
        parts = text.split(",", 2)
        # "y": the client could bind but believes we cannot (true: no -PLUS mechanism).
        if len(parts) != 3 or parts[0] not in ("n", "y"):
            raise AuthenticationFailed("malformed SCRAM client-first message")
        flag, authz, bare = parts
        authzid: str | None = None
        if authz:
            if not authz.startswith("a="):
                raise AuthenticationFailed("malformed SCRAM client-first message")
            authzid = unescape_saslname(authz[2:])
        attrs = bare.split(",")
        if attrs[0].startswith("m="):
            raise AuthenticationFailed("SCRAM mandatory extensions are not supported")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise AuthenticationFailed("malformed SCRAM client-first message")
        username = unescape_saslname(attrs[0][2:])
        client_nonce = attrs[1][2:]
        if not _printable(client_nonce):
            raise AuthenticationFailed("malformed SCRAM client-first message: bad nonce")
        if _extensions(attrs[2:]).get("tokenauth", "").lower() == "true":
            raise AuthenticationFailed("delegation tokens are not supported")
        if authzid is not None and authzid != username:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is different from username")

        credential = self._lookup(username)
        if credential is not None and (
            len(credential.stored_key) != self._digest_size
            or not MIN_ITERATIONS <= credential.iterations <= MAX_ITERATIONS
        ):
            credential = None  # not one this mechanism can check: as if absent
        self._known_user = credential is not None
        if credential is None:
            salt = hmac_of("sha256", _DECOY_KEY, f"{self._mechanism}\x00{username}".encode())
            credential = ScramCredential(salt[:_DECOY_SALT_BYTES], secrets.token_bytes(self._digest_size),
                                         secrets.token_bytes(self._digest_size), MIN_ITERATIONS)
        server_nonce = self._new_nonce()
        if not _printable(server_nonce):
            raise ValueError("the server nonce must be printable ASCII without commas")
        self._username = username
        self._credential = credential
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = bare
        self._nonce = client_nonce + server_nonce
        salt_b64 = base64.b64encode(credential.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt_b64},i={credential.iterations}"
        self._stage = "final"
        return self._server_first.encode("ascii")

    def _client_final(self, text: str) -> bytes:
        # channel-binding "," nonce ["," extensions] "," proof
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise AuthenticationFailed("malformed SCRAM client-final message")
        attrs = without_proof.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("c=") or not attrs[1].startswith("r="):
            raise AuthenticationFailed("malformed SCRAM client-final message")
        _extensions(attrs[2:])
        if _b64decode(attrs[0][2:], "channel binding") != self._gs2_header.encode():
            raise AuthenticationFailed("SCRAM channel binding does not match the client-first message")
        # Kafka accepts a final nonce that ends with the combined one, and librdkafka
        # 2.0 (Debian 12's kcat) sends its own nonce in front of it a second time. The
        # proof covers the message as sent, so this loosens nothing the proof binds.
        if not attrs[1][2:].endswith(self._nonce):
            raise AuthenticationFailed("SCRAM nonce does not match")
        proof = _b64decode(proof_b64, "proof")
        if len(proof) != self._digest_size:
            raise AuthenticationFailed("malformed SCRAM client-final message: bad proof length")

        credential = self._credential
        assert credential is not None
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac_of(self._hash, credential.stored_key, auth_message)
        claimed = stored_key(self._hash, xor(proof, signature))
        # compare_digest first, so a decoy costs the same as a real check.
        if not hmac.compare_digest(claimed, credential.stored_key) or not self._known_user:
            raise AuthenticationFailed(_BAD_CREDENTIALS.format(self._mechanism))
        verifier = hmac_of(self._hash, credential.server_key, auth_message)
        self._credential = None
        self._stage = "complete"
        return b"v=" + base64.b64encode(verifier)


# ------------------------------------------------------------ bootstrap credentials file


def parse_credentials_file(text: str) -> list[tuple[str, str, str]]:
    """(user, mechanism, password) for each `user:MECHANISM:password` line. `#` starts a
    comment line; blank lines are skipped; surrounding whitespace is dropped, so a
    password cannot start or end with a space. The password is everything after the
    second colon (it may hold colons); the user name cannot hold one. ValueError names
    the line, never its content: the line holds a password."""
    out: list[tuple[str, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":", 2)
        if len(fields) != 3:
            raise ValueError(f"line {number}: expected user:MECHANISM:password")
        user, mechanism, password = fields
        if not user:
            raise ValueError(f"line {number}: empty user name")
        if mechanism not in MECHANISMS:
            raise ValueError(f"line {number}: mechanism must be one of {', '.join(sorted(MECHANISMS))}")
        if not password:
            raise ValueError(f"line {number}: empty password")
        out.append((user, mechanism, password))
    return out
