"""DeleteRecords: move a partition's log start offset up, on the node that leads it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from broker.handlers.access import local_leader
from broker.handlers.pacing import Pacer
from broker.handlers.registry import Body, handles
from broker.log.errors import LogClosedError, LogStorageError, OffsetOutOfRangeError
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

HIGH_WATERMARK = -1


async def delete_partition_records(node: Node, topic: str, partition: int, offset: int) -> tuple[ErrorCode, int]:
    """(error, new low watermark) for one partition."""
    leadership = local_leader(node, topic, partition, to_write=True)
    replica = leadership.replica
    if replica is None:
        return leadership.error, -1
    target = replica.high_watermark if offset == HIGH_WATERMARK else offset
    if target < 0 or target > replica.high_watermark:
        return ErrorCode.OFFSET_OUT_OF_RANGE, -1
    try:
        # Deleting head files is disk work: keep it off the event loop.
        low = await asyncio.to_thread(replica.log.log.delete_records, target)
    except OffsetOutOfRangeError:
        return ErrorCode.OFFSET_OUT_OF_RANGE, -1
    except LogClosedError:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1  # deleted meanwhile
    except LogStorageError:
        return ErrorCode.KAFKA_STORAGE_ERROR, -1
    return ErrorCode.NONE, low


@handles("DeleteRecords")
async def delete_records(node: Node, client: ClientInfo, request: Request) -> Body:
    topics: list[dict[str, Any]] = []
    denied = denied_topics(node, client, request, AclOperation.DELETE, (t.name for t in request.body.topics))
    pacer = Pacer()
    for t in request.body.topics:
        partitions = []
        for p in t.partitions:
            await pacer.pause_if_due()
            if t.name in denied:
                error, low = ErrorCode.TOPIC_AUTHORIZATION_FAILED, -1
            else:
                error, low = await delete_partition_records(node, t.name, p.partition_index, p.offset)
            partitions.append({"partition_index": p.partition_index, "low_watermark": low, "error_code": error})
        topics.append({"name": t.name, "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
