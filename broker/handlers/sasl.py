"""SaslHandshake and SaslAuthenticate, every version in the spec.

SaslHandshake names a mechanism; the client's tokens then go to that mechanism's server
side (broker/security/sasl_mechanism.py): in SaslAuthenticate requests after a v1
handshake, as bare frames after a v0 one (the dispatcher hands those to `raw_token`).
When the mechanism completes, the connection acts as its principal.

What is offered: WALRUS-NODE on every listener, with which nodes prove membership
(broker/security/node_identity.py); on SASL listeners also `sasl_enabled_mechanisms`.
On PLAINTEXT and SSL listeners a client is who the listener says (User:ANONYMOUS, or
its certificate's principal).

As in Kafka:
- a mechanism not offered gets UNSUPPORTED_SASL_MECHANISM, a message out of order
  ILLEGAL_SASL_STATE, and the connection is closed;
- a failed exchange gets SASL_AUTHENTICATION_FAILED with the mechanism's message, and
  the connection closes `connection_failed_authentication_delay_ms` later;
- re-authentication (KIP-368): an authenticated connection runs a new v1 exchange with
  the same mechanism, which must end in the same principal. `session_lifetime_ms` tells
  the client when: `connections_max_reauth_ms`, or sooner when the credential expires
  (an OAUTHBEARER token). Past it, the connection may only re-authenticate
  (broker/server/sasl_gate.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security import node_identity
from broker.security.sasl_mechanism import AuthenticationFailed, SaslServer
from broker.server.connection import ClientInfo, CloseConnection
from broker.server.listener_specs import uses_sasl

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

_STATE_KEY = "sasl"


@dataclass(slots=True)
class _Exchange:
    server: SaslServer
    handshake_version: int


def offered_mechanisms(node: Node, client: ClientInfo) -> list[str]:
    names = list(node.config.sasl_enabled_mechanisms) if uses_sasl(client.security_protocol) else []
    return [*names, node_identity.MECHANISM]


def new_server(node: Node, mechanism: str) -> SaslServer:
    if mechanism == node_identity.MECHANISM:
        return node_identity.NodeIdentityServer(node.identity)
    if node.authenticators is None:
        raise AuthenticationFailed("this node is still starting")
    return node.authenticators.new_server(mechanism)


@handles("SaslHandshake")
async def sasl_handshake(node: Node, client: ClientInfo, request: Request) -> Body:
    mechanism = request.body.mechanism
    offered = offered_mechanisms(node, client)
    exchange = client.handler_state.get(_STATE_KEY)
    reauthenticating = client.sasl_mechanism is not None
    refused: tuple[ErrorCode, str] | None = None
    if exchange is not None:
        refused = ErrorCode.ILLEGAL_SASL_STATE, "a SASL exchange is already in progress"
    elif mechanism not in offered:
        refused = (ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                   f"SASL mechanism {mechanism!r} is not enabled on listener {client.listener}")
    elif reauthenticating and (request.api_version == 0 or mechanism != client.sasl_mechanism):
        refused = (ErrorCode.ILLEGAL_SASL_STATE,
                   f"re-authentication must use SaslHandshake v1 and {client.sasl_mechanism}")
    if refused is not None:
        code, reason = refused
        log.info("connection %d from %s (listener %s): SaslHandshake %r refused: %s",
                 client.connection_id, client.host, client.listener, mechanism, reason)
        client.close_after_s = 0.0
        return {"error_code": code, "mechanisms": offered}
    client.handler_state[_STATE_KEY] = _Exchange(new_server(node, mechanism), request.api_version)
    if request.api_version == 0:
        client.sasl_raw_tokens = True
    return {"error_code": ErrorCode.NONE, "mechanisms": offered}


@handles("SaslAuthenticate")
async def sasl_authenticate(node: Node, client: ClientInfo, request: Request) -> Body:
    exchange = client.handler_state.get(_STATE_KEY)
    if not isinstance(exchange, _Exchange) or client.sasl_raw_tokens:
        client.close_after_s = 0.0
        return _answer(ErrorCode.ILLEGAL_SASL_STATE,
                       "SaslAuthenticate without a SaslHandshake v1 before it")
    try:
        token = await _evaluate(exchange.server, bytes(request.body.auth_bytes or b""))
        lifetime_ms = _complete(node, client, exchange) if exchange.server.complete else 0
    except AuthenticationFailed as exc:
        _failed(node, client, exchange, str(exc))
        return _answer(ErrorCode.SASL_AUTHENTICATION_FAILED, str(exc))
    return _answer(ErrorCode.NONE, None, token, lifetime_ms)


async def raw_token(node: Node, client: ClientInfo, token: bytes) -> bytes:
    """The next token of an exchange begun with SaslHandshake v0."""
    exchange = client.handler_state.get(_STATE_KEY)
    if not isinstance(exchange, _Exchange):
        raise CloseConnection("a bare SASL token outside an exchange")
    try:
        answer = await _evaluate(exchange.server, token)
        if exchange.server.complete:
            _complete(node, client, exchange)
            client.sasl_raw_tokens = False
    except AuthenticationFailed as exc:
        _failed(node, client, exchange, str(exc))
        # v0 has no error field: Kafka closes the connection.
        raise CloseConnection(f"SASL authentication failed: {exc}") from None
    return answer


async def _evaluate(server: SaslServer, token: bytes) -> bytes:
    # PLAIN checked against SCRAM credentials derives a key (thousands of hash rounds):
    # off the event loop, like every exchange step, which costs little at login rate.
    return await asyncio.to_thread(server.evaluate, token)


def _complete(node: Node, client: ClientInfo, exchange: _Exchange) -> int:
    """Make the connection the exchange's principal; the session lifetime in ms (0: no
    limit). Raises AuthenticationFailed when re-authentication changes the principal or
    the credential has already expired."""
    server = exchange.server
    principal = server.principal
    if client.sasl_mechanism is not None and principal != client.principal:
        raise AuthenticationFailed("Cannot change principals during re-authentication from "
                                   f"{client.principal} to {principal}")
    lifetime_ms = node.config.connections_max_reauth_ms
    if server.expires_at_ms is not None:
        left = server.expires_at_ms - time.time_ns() // 1_000_000
        if left <= 0:
            raise AuthenticationFailed("Authentication failed: the credential has expired")
        lifetime_ms = left if lifetime_ms <= 0 else min(lifetime_ms, left)
    if isinstance(server, node_identity.NodeIdentityServer):
        client.node_id = server.node_id
    client.principal = principal
    client.authenticated = True
    client.sasl_mechanism = server.mechanism
    client.session_expires_at = time.monotonic() + lifetime_ms / 1000 if lifetime_ms > 0 else None
    client.handler_state.pop(_STATE_KEY, None)
    log.debug("connection %d from %s authenticated as %s with %s", client.connection_id,
              client.host, principal, server.mechanism)
    return lifetime_ms


def _failed(node: Node, client: ClientInfo, exchange: _Exchange, reason: str) -> None:
    client.handler_state.pop(_STATE_KEY, None)
    client.close_after_s = node.config.connection_failed_authentication_delay_ms / 1000
    log.warning("connection %d from %s (listener %s): %s authentication failed: %s",
                client.connection_id, client.host, client.listener, exchange.server.mechanism,
                reason)


def _answer(error: ErrorCode, message: str | None, data: bytes = b"", lifetime_ms: int = 0) -> Body:
    return {"error_code": error, "error_message": message, "auth_bytes": data,
            "session_lifetime_ms": lifetime_ms}
