"""DescribeProducers: the idempotent producers a partition replica knows, with their
epochs and last sequences. Nodes also use it to hand producer state to the next leader
of a partition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers.pacing import Pacer
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


def describe_partition(node: Node, topic: str, partition: int) -> dict[str, Any]:
    assert node.replicas is not None
    with node.metadata() as state:
        known = state.partition(topic, partition) is not None
    replica = node.replicas.get(topic, partition) if known else None
    if replica is None:
        code = ErrorCode.NOT_LEADER_OR_FOLLOWER if known else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return {"partition_index": partition, "error_code": code, "active_producers": []}
    producers = [
        {"producer_id": pid, "producer_epoch": entry.epoch, "last_sequence": entry.last_seq,
         "last_timestamp": entry.last_timestamp, "coordinator_epoch": -1,
         "current_txn_start_offset": -1}
        for pid, entry in replica.producers.items()
    ]
    return {"partition_index": partition, "error_code": ErrorCode.NONE, "active_producers": producers}


@handles("DescribeProducers")
async def describe_producers(node: Node, client: ClientInfo, request: Request) -> Body:
    denied = denied_topics(node, client, request, AclOperation.READ, (t.name for t in request.body.topics))
    refused = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    pacer = Pacer()
    topics = []
    for t in request.body.topics:
        partitions = []
        for p in t.partition_indexes:
            await pacer.pause_if_due()
            partitions.append(
                {"partition_index": p, "error_code": refused, "active_producers": []} if t.name in denied
                else describe_partition(node, t.name, p))
        topics.append({"name": t.name, "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
