"""SaslHandshake and SaslAuthenticate: for now the one mechanism nodes prove their
identity with (WALRUS-NODE, broker/security/node_identity.py). Clients authenticate
with no mechanism yet; asking for one gets UNSUPPORTED_SASL_MECHANISM.

A connection's exchange moves through handshake -> challenged -> proven (or failed);
a message out of that order gets ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security import node_identity
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

_STATE_KEY = "sasl"


@dataclass(slots=True)
class _Exchange:
    stage: str = "handshake"  # handshake -> challenged -> done
    node_id: int = -1
    client_nonce: bytes = b""
    server_nonce: bytes = b""


# v0 hands the connection over to raw SASL tokens, which no mechanism here uses.
@handles("SaslHandshake", min_version=1)
async def sasl_handshake(node: Node, client: ClientInfo, request: Request) -> Body:
    mechanism = request.body.mechanism
    if client.handler_state.get(_STATE_KEY) is not None:
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": [node_identity.MECHANISM]}
    if mechanism != node_identity.MECHANISM:
        log.info("connection %d from %s asked for SASL mechanism %r, which is not enabled",
                 client.connection_id, client.host, mechanism)
        return {"error_code": ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                "mechanisms": [node_identity.MECHANISM]}
    client.handler_state[_STATE_KEY] = _Exchange()
    return {"error_code": ErrorCode.NONE, "mechanisms": [node_identity.MECHANISM]}


@handles("SaslAuthenticate")
async def sasl_authenticate(node: Node, client: ClientInfo, request: Request) -> Body:
    exchange = client.handler_state.get(_STATE_KEY)
    data = bytes(request.body.auth_bytes or b"")
    if not isinstance(exchange, _Exchange) or exchange.stage == "done":
        return _answer(ErrorCode.ILLEGAL_SASL_STATE, "no SASL handshake is in progress")
    credentials = node.identity
    try:
        if credentials is None:
            raise node_identity.IdentityRefused("this node has no cluster secret yet")
        if exchange.stage == "handshake":
            exchange.node_id, exchange.client_nonce = node_identity.parse_first_message(data)
            exchange.server_nonce = node_identity.new_nonce()
            exchange.stage = "challenged"
            return _answer(ErrorCode.NONE, None, exchange.server_nonce)
        exchange.stage = "done"
        node_identity.check_proof(credentials.key, exchange.node_id, exchange.client_nonce,
                                  exchange.server_nonce, data)
    except node_identity.IdentityRefused as exc:
        exchange.stage = "done"
        log.warning("connection %d from %s: node identity refused: %s",
                    client.connection_id, client.host, exc)
        return _answer(ErrorCode.SASL_AUTHENTICATION_FAILED, f"authentication failed: {exc}")
    client.node_id = exchange.node_id
    log.debug("connection %d from %s is node %d", client.connection_id, client.host,
              exchange.node_id)
    return _answer(ErrorCode.NONE, None)


def _answer(error: ErrorCode, message: str | None, data: bytes = b"") -> Body:
    return {"error_code": error, "error_message": message, "auth_bytes": data,
            "session_lifetime_ms": 0}
