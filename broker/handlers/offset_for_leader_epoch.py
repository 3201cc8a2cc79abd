"""OffsetForLeaderEpoch: where a leader epoch ended, so a client can detect log
truncation after a leader change (KIP-320)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers.access import check_leader_epoch, local_leader
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


@handles("OffsetForLeaderEpoch")
async def offset_for_leader_epoch(node: Node, client: ClientInfo, request: Request) -> Body:
    topics: list[dict[str, Any]] = []
    for t in request.body.topics:
        partitions = []
        for p in t.partitions:
            answer: dict[str, Any] = {"error_code": ErrorCode.NONE, "partition": p.partition,
                                      "leader_epoch": -1, "end_offset": -1}
            leadership = local_leader(node, t.topic, p.partition)
            if leadership.replica is None:
                answer["error_code"] = leadership.error
            elif (err := check_leader_epoch(p.current_leader_epoch, leadership.epoch)) != ErrorCode.NONE:
                answer["error_code"] = err
            else:
                found = leadership.replica.log.log.end_offset_for_epoch(p.leader_epoch)
                answer["leader_epoch"] = found.epoch
                answer["end_offset"] = found.end_offset
            partitions.append(answer)
        topics.append({"topic": t.topic, "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
