"""What a connection on a SASL listener may send before it has authenticated, and once
its session has expired (KIP-368).

Kafka serves only ApiVersions, SaslHandshake and SaslAuthenticate until the exchange
succeeds, and closes the connection on anything else; a session past its lifetime may
only re-authenticate. The API key is read from the frame's first two bytes, so nothing
else of an unauthenticated request is decoded.
"""

from __future__ import annotations

from broker.server.connection import ClientInfo

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
ALWAYS_SERVED = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})


def refusal(client: ClientInfo, frame: bytes, now: float) -> str | None:
    """Why this frame may not be served on this connection now, or None."""
    if client.authenticated and client.session_expires_at is None:
        return None
    api_key = int.from_bytes(frame[:2], "big", signed=True) if len(frame) >= 2 else -1
    if api_key in ALWAYS_SERVED:
        return None
    if not client.authenticated:
        return f"api key {api_key} sent before SASL authentication"
    if client.session_expires_at is not None and now >= client.session_expires_at:
        return "its SASL session expired and was not re-authenticated"
    return None
