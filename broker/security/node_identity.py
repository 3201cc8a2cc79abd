"""How a node proves to another that it is a member of the cluster, inside Kafka's own
SASL exchange (SaslHandshake v1, then SaslAuthenticate), with the mechanism
"WALRUS-NODE".

Challenge and response, keyed by the cluster secret, so the secret never travels and
an answer seen once cannot be replayed on another connection:

    client -> server   b"n=<node id>,r=<client nonce, hex>"
    server -> client   <server nonce, 32 random bytes>
    client -> server   HMAC-SHA256(key, b"walrus-node-v1|<node id>|" + client nonce
                                          + server nonce)

The key is derived from the secret with a label of its own, so it is not the key that
authenticates Raft traffic. Pure functions: no sockets, no state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from broker.security.sasl_mechanism import AuthenticationFailed

MECHANISM = "WALRUS-NODE"
NONCE_BYTES = 32
_FIRST_MESSAGE = re.compile(rb"n=(\d{1,10}),r=([0-9a-f]{64})")


class IdentityRefused(ValueError):
    """A message of the exchange that is malformed or proves nothing."""


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    node_id: int
    key: bytes


def derive_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"walrus node identity v1", hashlib.sha256).digest()


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def first_message(node_id: int, client_nonce: bytes) -> bytes:
    return f"n={node_id},r={client_nonce.hex()}".encode()


def parse_first_message(data: bytes) -> tuple[int, bytes]:
    match = _FIRST_MESSAGE.fullmatch(data)
    if match is None:
        raise IdentityRefused("malformed first message")
    return int(match.group(1)), bytes.fromhex(match.group(2).decode())


def proof(key: bytes, node_id: int, client_nonce: bytes, server_nonce: bytes) -> bytes:
    message = b"walrus-node-v1|%d|" % node_id + client_nonce + server_nonce
    return hmac.new(key, message, hashlib.sha256).digest()


def check_proof(key: bytes, node_id: int, client_nonce: bytes, server_nonce: bytes,
                answer: bytes) -> None:
    if not hmac.compare_digest(proof(key, node_id, client_nonce, server_nonce), answer):
        raise IdentityRefused(f"node {node_id} did not prove it holds the cluster secret")


class NodeIdentityServer:
    """The exchange above as a SASL mechanism (broker/security/sasl_mechanism.py). A
    node that passes acts as Kafka's inter-broker principal: `node_id` is set."""

    mechanism = MECHANISM

    def __init__(self, credentials: NodeCredentials | None) -> None:
        self._credentials = credentials
        self._stage = "first"
        self._client_nonce = b""
        self._server_nonce = b""
        self._claimed = -1
        self.node_id: int | None = None

    def evaluate(self, token: bytes) -> bytes:
        try:
            if self._credentials is None:
                raise IdentityRefused("this node has no cluster secret yet")
            if self._stage == "first":
                self._claimed, self._client_nonce = parse_first_message(token)
                self._server_nonce = new_nonce()
                self._stage = "challenged"
                return self._server_nonce
            if self._stage != "challenged":
                raise IdentityRefused("the exchange is over")
            self._stage = "done"
            check_proof(self._credentials.key, self._claimed, self._client_nonce,
                        self._server_nonce, token)
        except IdentityRefused as exc:
            self._stage = "done"
            raise AuthenticationFailed(f"authentication failed: {exc}") from None
        self.node_id = self._claimed
        return b""

    @property
    def complete(self) -> bool:
        return self.node_id is not None

    @property
    def principal(self) -> str:
        return f"User:walrus-node-{self.node_id}"

    @property
    def expires_at_ms(self) -> int | None:
        return None
