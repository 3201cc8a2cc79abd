"""The cluster's SCRAM credentials, part of the replicated metadata.

One credential per (user, mechanism), as in Kafka: what the server side of SCRAM needs
(salt, StoredKey, ServerKey, iterations), never a password. After each change the table
publishes a new read-only mapping, so an authenticating connection looks a user up on
any thread without the metadata lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from broker.security.scram import (
    MAX_ITERATIONS,
    MECHANISMS,
    MIN_ITERATIONS,
    ScramCredential,
    derive,
    digest_size,
)

from .commands import UpsertScramCredential

CredentialKey = tuple[str, str]  # (user, mechanism)

_EMPTY: Mapping[CredentialKey, ScramCredential] = MappingProxyType({})


def credential_problem(user: object, mechanism: object, credential: ScramCredential | None = None) -> tuple[str, str] | None:
    """(error name, message) when the fields cannot make a stored credential; None when
    they can. The error names are Kafka's: the handlers answer with them."""
    if not isinstance(user, str) or not user:
        return "UNACCEPTABLE_CREDENTIAL", "Username must not be empty"
    if not isinstance(mechanism, str) or mechanism not in MECHANISMS:
        return "UNSUPPORTED_SASL_MECHANISM", "Unknown SCRAM mechanism"
    if credential is None:
        return None
    size = digest_size(mechanism)
    if type(credential.iterations) is not int:
        return "UNACCEPTABLE_CREDENTIAL", "iterations must be an integer"
    if credential.iterations < MIN_ITERATIONS:
        return "UNACCEPTABLE_CREDENTIAL", "Too few iterations"
    if credential.iterations > MAX_ITERATIONS:
        return "UNACCEPTABLE_CREDENTIAL", "Too many iterations"
    if not isinstance(credential.salt, bytes) or not credential.salt:
        return "UNACCEPTABLE_CREDENTIAL", "the salt must not be empty"
    for key in (credential.stored_key, credential.server_key):
        if not isinstance(key, bytes) or len(key) != size:
            return "UNACCEPTABLE_CREDENTIAL", f"{mechanism} keys are {size} bytes"
    return None


def upsert_for_password(user: str, mechanism: str, password: str,
                        iterations: int = MIN_ITERATIONS, salt: bytes | None = None) -> UpsertScramCredential:
    """The command that gives `user` this password (a bootstrap credentials file, say).
    Proposer side: the salt is drawn here, and only the derived keys enter the command.
    ValueError for an unknown mechanism or iterations out of Kafka's bounds."""
    if salt is None:
        salt = secrets.token_bytes(32)
    c = derive(mechanism, password, salt, iterations)
    return UpsertScramCredential(user, mechanism, c.salt, c.stored_key, c.server_key, c.iterations)


class ScramCredentialTable:
    def __init__(self) -> None:
        self._credentials: dict[CredentialKey, ScramCredential] = {}
        self.published: Mapping[CredentialKey, ScramCredential] = _EMPTY

    def __len__(self) -> int:
        return len(self._credentials)

    def upsert(self, user: str, mechanism: str, credential: ScramCredential) -> None:
        """Store a credential that credential_problem accepted."""
        self._credentials[(user, mechanism)] = credential
        self._publish()

    def delete(self, user: str, mechanism: str) -> bool:
        """False when there was nothing to delete."""
        if self._credentials.pop((user, mechanism), None) is None:
            return False
        self._publish()
        return True

    def to_rows(self) -> list[list[Any]]:
        return [
            [user, mechanism, c.salt.hex(), c.stored_key.hex(), c.server_key.hex(), c.iterations]
            for (user, mechanism), c in sorted(self._credentials.items())
        ]

    def load_rows(self, rows: Iterable[Any]) -> None:
        self._credentials = {
            (user, mechanism): ScramCredential(bytes.fromhex(salt), bytes.fromhex(stored),
                                               bytes.fromhex(server), iterations)
            for user, mechanism, salt, stored, server, iterations in rows
        }
        self._publish()

    def _publish(self) -> None:
        # One reference assignment: readers see the old mapping or the new one, whole.
        self.published = MappingProxyType(dict(self._credentials)) if self._credentials else _EMPTY
