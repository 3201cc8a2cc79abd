"""SASL PLAIN (RFC 4616), server side: one message, `authzid NUL authcid NUL password`.

The password is checked by a callable the broker passes in: against the
`sasl_plain_credentials_file` when one is configured, otherwise against the SCRAM
credentials in the metadata. PLAIN sends the password itself, so it belongs on TLS
listeners (SASL_SSL) outside a trusted network.
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Callable
from pathlib import Path

from broker.security.sasl_mechanism import AuthenticationFailed

MECHANISM = "PLAIN"
# Names and passwords are short; a longer message is not a login.
MAX_MESSAGE_BYTES = 4096
_FAILED = "Authentication failed: Invalid username or password"

# (username, password) -> whether they match.
PasswordCheck = Callable[[str, str], bool]


class PlainServer:
    mechanism = MECHANISM

    def __init__(self, check: PasswordCheck) -> None:
        self._check = check
        self._user: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self._user is not None:
            raise AuthenticationFailed("PLAIN takes one message, and it was sent")
        if len(token) > MAX_MESSAGE_BYTES:
            raise AuthenticationFailed("Invalid SASL/PLAIN message: too long")
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed(
                "Invalid SASL/PLAIN response: expected 3 tokens separated by NUL"
            )
        try:
            authzid, user, password = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        if not user:
            raise AuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise AuthenticationFailed("Authentication failed: password not specified")
        if authzid and authzid != user:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        if not self._check(user, password):
            raise AuthenticationFailed(_FAILED)
        self._user = user
        return b""

    @property
    def complete(self) -> bool:
        return self._user is not None

    @property
    def principal(self) -> str:
        if self._user is None:
            raise AuthenticationFailed("not authenticated")
        return f"User:{self._user}"

    @property
    def expires_at_ms(self) -> int | None:
        return None


def load_plain_credentials(path: Path) -> dict[str, str]:
    """`user:password` per line; blank lines and lines starting with # are skipped.
    The password is everything after the first colon. Refuses a file others may read:
    it holds passwords in the clear."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(
            f"holds passwords and is readable by others (mode {stat.filemode(mode)}); "
            f"chmod 600 it"
        )
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"line {number}: expected user:password")
        if user in users:
            raise ValueError(f"line {number}: user {user!r} is listed twice")
        users[user] = password
    return users


def file_check(users: dict[str, str]) -> PasswordCheck:
    def check(user: str, password: str) -> bool:
        # Compared even for an unknown user, so the time taken does not tell which.
        expected = users.get(user, "\0" * len(password))
        return hmac.compare_digest(expected.encode(), password.encode()) and user in users

    return check
