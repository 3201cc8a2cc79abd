"""The client side of a SCRAM exchange (RFC 5802), for tests to drive the broker's server
side: it builds the messages a Kafka client sends and checks the server's signature."""

from __future__ import annotations

import base64

from broker.security import scram


class ScramClient:
    def __init__(self, mechanism: str, user: str, password: str, nonce: str = "c1i3nt-n0nce",
                 authzid: str | None = None, extensions: str = "", gs2_flag: str = "n") -> None:
        self.hash = scram.hash_name(mechanism)
        self.password = password.encode()
        authz = "" if authzid is None else "a=" + scram.escape_saslname(authzid)
        self.gs2_header = f"{gs2_flag},{authz},"
        self.client_nonce = nonce
        self.first_bare = f"n={scram.escape_saslname(user)},r={nonce}{extensions}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2_header + self.first_bare).encode()

    def final(self, server_first: bytes, *, nonce: str | None = None,
              channel_binding: str | None = None, password: bytes | None = None) -> bytes:
        """The client-final message answering `server_first`; the keyword arguments
        replace what an honest client would send."""
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        assert attrs["r"].startswith(self.client_nonce)
        cbind = channel_binding or base64.b64encode(self.gs2_header.encode()).decode()
        without_proof = f"c={cbind},r={attrs['r'] if nonce is None else nonce}"
        salted = scram.salted_password(self.hash, password or self.password, salt, iterations)
        key = scram.client_key(self.hash, salted)
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = scram.hmac_of(self.hash, scram.stored_key(self.hash, key), auth_message)
        self.server_signature = scram.hmac_of(self.hash, scram.server_key(self.hash, salted), auth_message)
        proof = base64.b64encode(scram.xor(key, signature)).decode()
        return f"{without_proof},p={proof}".encode()

    def server_verified(self, server_final: bytes) -> bool:
        return server_final == b"v=" + base64.b64encode(self.server_signature)
