"""InitProducerId for idempotent producers. Transactions are not served: a request
with a transactional id is refused, and the client reports it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from broker.coordination.raft import RaftError
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation, ResourceType
from broker.security.checks import allowed_on_any, cluster_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)


@handles("InitProducerId")
async def init_producer_id(node: Node, client: ClientInfo, request: Request) -> Body:
    answer = {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "producer_id": -1, "producer_epoch": -1}
    if request.body.transactional_id is not None:
        log.info("client %r asked for transactional id %r: transactions are not supported",
                 request.client_id, request.body.transactional_id)
        answer["error_code"] = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        return answer
    # Kafka: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
    if not cluster_allowed(node, client, request, AclOperation.IDEMPOTENT_WRITE) and not allowed_on_any(
        node, client, request, AclOperation.WRITE, ResourceType.TOPIC
    ):
        answer["error_code"] = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return answer
    try:
        # An idempotent producer (re)initialising gets a fresh id at epoch 0, as Kafka
        # gives producers without a transactional id.
        answer["producer_id"] = await node.producer_ids.allocate()
        answer["producer_epoch"] = 0
    except RaftError as exc:
        log.warning("producer id allocation failed: %s", exc)
        answer["error_code"] = ErrorCode.COORDINATOR_NOT_AVAILABLE
    return answer
