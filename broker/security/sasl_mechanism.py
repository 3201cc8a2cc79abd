"""What a SASL mechanism's server side looks like to the broker.

The broker's SaslHandshake/SaslAuthenticate handlers (and the raw-token exchange after a
SaslHandshake v0) create one `SaslServer` per authentication and feed it the client's
tokens in order; the mechanism answers each with the bytes to send back. Mechanisms are
pure: no sockets, no clock of their own, no logging of secrets. Whatever they need from
the broker (a credential store, a key set, the time) is passed to their constructor.

A failure is an `AuthenticationFailed` whose message is safe to send to the client
(Kafka sends it in SaslAuthenticate's error_message) and to log: it never holds a
password, a proof or a token.
"""

from __future__ import annotations

from typing import Protocol


class AuthenticationFailed(Exception):
    """The exchange cannot succeed: bad credentials, a malformed message, an expired
    token. The connection is closed after the error is sent."""


class SaslServer(Protocol):
    """One authentication exchange, server side."""

    @property
    def mechanism(self) -> str:
        """The mechanism's name as clients send it ("PLAIN", "SCRAM-SHA-256")."""
        ...

    def evaluate(self, token: bytes) -> bytes:
        """Take the client's next token and return the server's answer (b"" for none).
        Raises AuthenticationFailed."""
        ...

    @property
    def complete(self) -> bool:
        """True once the client is authenticated; no more tokens are expected."""
        ...

    @property
    def principal(self) -> str:
        """The authenticated Kafka principal ("User:alice"); valid once complete."""
        ...

    @property
    def expires_at_ms(self) -> int | None:
        """Wall-clock ms after which the credential is no longer valid (an OAUTHBEARER
        token's exp), or None when it does not expire. Caps the session lifetime the
        broker grants (KIP-368)."""
        ...
