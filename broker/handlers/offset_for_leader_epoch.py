"""OffsetForLeaderEpoch: where a leader epoch ended, so a client can detect log
truncation after a leader change (KIP-320).

Each segment of a partition's chain is one leader epoch, and the chain lives in the
metadata, so the leader answers for every past epoch even when other nodes hold those
segments' data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers.access import check_leader_epoch, local_leader_to_read
from broker.handlers.pacing import Pacer
from broker.handlers.registry import Body, handles
from broker.log import EpochEndOffset, SegmentInfo
from broker.log.epochs import end_offset_for_epoch
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


def _from_chain(node: Node, topic: str, partition: int, epoch: int,
                log_end_offset: int) -> EpochEndOffset:
    """Kafka's rule over the metadata's chain; the current epoch ends at the leader's
    log end offset."""
    with node.metadata() as state:
        found = state.partition(topic, partition)
        chain = [SegmentInfo(s.epoch, s.base_offset, s.end_offset)
                 for s in (found.segments if found is not None else [])]
    return end_offset_for_epoch(chain, epoch, log_end_offset)


@handles("OffsetForLeaderEpoch")
async def offset_for_leader_epoch(node: Node, client: ClientInfo, request: Request) -> Body:
    topics: list[dict[str, Any]] = []
    denied = denied_topics(node, client, request, AclOperation.DESCRIBE, (t.topic for t in request.body.topics))
    pacer = Pacer()
    for t in request.body.topics:
        partitions = []
        for p in t.partitions:
            await pacer.pause_if_due()
            answer: dict[str, Any] = {"error_code": ErrorCode.NONE, "partition": p.partition,
                                      "leader_epoch": -1, "end_offset": -1}
            if t.topic in denied:
                answer["error_code"] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
                partitions.append(answer)
                continue
            leadership = await local_leader_to_read(node, t.topic, p.partition)
            if leadership.replica is None:
                answer["error_code"] = leadership.error
            elif (err := check_leader_epoch(p.current_leader_epoch, leadership.epoch)) != ErrorCode.NONE:
                answer["error_code"] = err
            else:
                found = _from_chain(node, t.topic, p.partition, p.leader_epoch,
                                    leadership.replica.log_end_offset)
                answer["leader_epoch"] = found.epoch
                answer["end_offset"] = found.end_offset
            partitions.append(answer)
        topics.append({"topic": t.topic, "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
