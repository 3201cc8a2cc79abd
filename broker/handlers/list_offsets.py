"""ListOffsets: earliest, latest, by timestamp, and the max-timestamp offset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers.access import check_leader_epoch, local_leader
from broker.handlers.registry import Body, handles
from broker.log.errors import LogStorageError
from broker.partitions.replica import PartitionReplica
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
EARLIEST_TIERED = -5


def _epoch_at(node: Node, topic: str, partition: int, offset: int, current: int) -> int:
    with node.metadata() as state:
        segment = state.segment_for_offset(topic, partition, offset)
    return segment.epoch if segment is not None else current


def lookup(replica: PartitionReplica, timestamp: int) -> tuple[int, int]:
    """(timestamp, offset) Kafka answers for one ListOffsets query."""
    if timestamp == LATEST:
        return -1, replica.high_watermark
    if timestamp in (EARLIEST, EARLIEST_LOCAL, EARLIEST_TIERED):
        return -1, replica.log_start_offset
    if timestamp == MAX_TIMESTAMP:
        return replica.log.log.largest_timestamp_offset
    found = replica.log.log.offset_for_timestamp(timestamp)
    if found is None or found[0] >= replica.high_watermark:
        return -1, -1
    offset, ts = found
    return ts, offset


@handles("ListOffsets", 1)
async def list_offsets(node: Node, client: ClientInfo, request: Request) -> Body:
    topics: list[dict[str, Any]] = []
    for t in request.body.topics:
        partitions = []
        for p in t.partitions:
            answer: dict[str, Any] = {
                "partition_index": p.partition_index, "error_code": ErrorCode.NONE,
                "timestamp": -1, "offset": -1, "leader_epoch": -1,
            }
            leadership = local_leader(node, t.name, p.partition_index)
            replica = leadership.replica
            if replica is None:
                answer["error_code"] = leadership.error
            elif (err := check_leader_epoch(p.current_leader_epoch, leadership.epoch)) != ErrorCode.NONE:
                answer["error_code"] = err
            else:
                try:
                    ts, offset = lookup(replica, p.timestamp)
                except LogStorageError:
                    answer["error_code"] = ErrorCode.KAFKA_STORAGE_ERROR
                else:
                    answer["timestamp"] = ts
                    answer["offset"] = offset
                    if offset >= 0:
                        answer["leader_epoch"] = _epoch_at(node, t.name, p.partition_index, offset, leadership.epoch)
            partitions.append(answer)
        topics.append({"name": t.name, "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
