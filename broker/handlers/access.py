"""Finding the local replica a request is about, with Kafka's errors when it is not
here: unknown topic or partition, or led by another node."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.coordination.errors import Refusal
from broker.leadership.readiness import active_view, make_ready, steps_due
from broker.partitions.replica import PartitionReplica
from broker.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from broker.node import Node


@dataclass(slots=True)
class Leadership:
    error: ErrorCode
    replica: PartitionReplica | None = None
    leader_id: int = -1
    epoch: int = -1
    segment_base: int = 0


def local_leader(node: Node, topic: str, partition: int, *, to_write: bool) -> Leadership:
    """The replica to write or read the partition's newest data, if this node leads it.

    A write takes whatever step leadership still needs here (it raced the metadata
    apply that leadership/readiness.py follows); a read never changes leadership state,
    and is answered "not leader" until the node is ready."""
    with node.metadata() as state:
        found = state.partition(topic, partition)
        if found is None:
            return Leadership(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        active = active_view(found.active)
    if active.leader != node.node_id:
        return Leadership(ErrorCode.NOT_LEADER_OR_FOLLOWER, leader_id=active.leader, epoch=active.epoch)
    assert node.replicas is not None
    if node.replicas.is_offline(topic, partition):
        # Its files could not be read at start-up: it alone is out of service.
        return Leadership(ErrorCode.KAFKA_STORAGE_ERROR, leader_id=active.leader, epoch=active.epoch)
    replica = node.replicas.get_or_open(topic, partition)
    if to_write:
        make_ready(node.node_id, replica, active, node.config.replica_lag_time_max_ms)
    elif steps_due(node.node_id, active, replica):
        return Leadership(ErrorCode.NOT_LEADER_OR_FOLLOWER, leader_id=active.leader, epoch=active.epoch)
    return Leadership(ErrorCode.NONE, replica, active.leader, active.epoch, active.base_offset)


async def local_leader_to_read(node: Node, topic: str, partition: int) -> Leadership:
    """local_leader for a read, which lets a queued apply that made this node leader run
    first (leadership/readiness.py) rather than answer "not leader" for it."""
    leadership = local_leader(node, topic, partition, to_write=False)
    if leadership.replica is None and leadership.leader_id == node.node_id:
        await asyncio.sleep(0)
        leadership = local_leader(node, topic, partition, to_write=False)
    return leadership


def check_leader_epoch(requested: int, current: int) -> ErrorCode:
    """KIP-320: a client that knows a newer epoch than ours is ahead of our metadata;
    one that knows an older epoch must refresh its own."""
    if requested == -1 or requested == current:
        return ErrorCode.NONE
    return ErrorCode.UNKNOWN_LEADER_EPOCH if requested > current else ErrorCode.FENCED_LEADER_EPOCH


def refusal_code(result: object) -> ErrorCode:
    """The Kafka error code a metadata refusal stands for."""
    if isinstance(result, Refusal):
        name = result.error.value
        return ErrorCode[name] if name in ErrorCode.__members__ else ErrorCode.UNKNOWN_SERVER_ERROR
    return ErrorCode.NONE
