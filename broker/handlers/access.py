"""Finding the local replica a request is about, with Kafka's errors when it is not
here: unknown topic or partition, or led by another node."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.coordination.errors import Refusal
from broker.partitions.in_sync import InSyncTracker
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


def local_leader(node: Node, topic: str, partition: int) -> Leadership:
    """The replica to write or read the partition's newest data, if this node leads it."""
    with node.metadata() as state:
        found = state.partition(topic, partition)
        if found is None:
            return Leadership(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        active = found.active
        leader, epoch, base = active.leader, active.epoch, active.base_offset
        replicas, in_sync = list(active.replicas), active.in_sync
    if leader != node.node_id:
        return Leadership(ErrorCode.NOT_LEADER_OR_FOLLOWER, leader_id=leader, epoch=epoch)
    assert node.replicas is not None
    if node.replicas.is_offline(topic, partition):
        # Its files could not be read at start-up: it alone is out of service.
        return Leadership(ErrorCode.KAFKA_STORAGE_ERROR, leader_id=leader, epoch=epoch)
    replica = leader_replica(node, topic, partition, epoch, base, replicas, in_sync)
    return Leadership(ErrorCode.NONE, replica, leader, epoch, base)


def leader_replica(node: Node, topic: str, partition: int, epoch: int, base: int,
                   replicas: list[int], in_sync: list[int]) -> PartitionReplica:
    """This node's replica, made ready to lead the segment of `epoch`."""
    assert node.replicas is not None
    replica = node.replicas.get_or_open(topic, partition)
    # Leadership came to this node in a newer epoch (applied while it was down, say):
    # its writes start that segment.
    replica.begin_segment(epoch, base)
    if len(replicas) < 2:
        if replica.tracker is not None:
            replica.lead_with_followers(None)
    elif replica.tracker is None or replica.tracker_epoch != epoch:
        replica.tracker_epoch = epoch
        replica.lead_with_followers(InSyncTracker(
            node.node_id, replicas, in_sync, time.monotonic() * 1000, node.config.replica_lag_time_max_ms,
        ))
    elif replica.tracker.replicas != replicas:
        replica.tracker.set_replicas(replicas, time.monotonic() * 1000)
        replica.refresh_high_watermark()
    return replica


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
