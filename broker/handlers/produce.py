"""Produce: validate and append each partition's batch, answer when acks are met."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from broker.handlers.access import local_leader
from broker.handlers.registry import Body, handles
from broker.partitions.replica import ProduceOutcome
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)


async def _produce_partition(node: Node, topic: str, partition: int, records: Any, acks: int) -> ProduceOutcome:
    if acks not in (-1, 0, 1):
        return ProduceOutcome(ErrorCode.INVALID_REQUIRED_ACKS)
    if records is None or len(records) == 0:
        return ProduceOutcome(ErrorCode.INVALID_RECORD, message="no records")
    leadership = local_leader(node, topic, partition)
    if leadership.replica is None:
        return ProduceOutcome(leadership.error)
    return await leadership.replica.append(records, epoch=leadership.epoch)


def _partition_response(index: int, outcome: ProduceOutcome) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": outcome.error,
        "base_offset": outcome.base_offset,
        "log_append_time_ms": outcome.log_append_time,
        "log_start_offset": outcome.log_start_offset,
        "record_errors": [],
        "error_message": outcome.message if outcome.error != ErrorCode.NONE else None,
    }


@handles("Produce")
async def produce(node: Node, client: ClientInfo, request: Request) -> Body | None:
    body = request.body
    acks = body.acks
    keys: list[tuple[str, int]] = []
    work = []
    for topic_data in body.topic_data:
        for p in topic_data.partition_data:
            keys.append((topic_data.name, p.index))
            work.append(_produce_partition(node, topic_data.name, p.index, p.records, acks))
    outcomes = await asyncio.gather(*work)
    if acks == 0:
        # Kafka sends nothing back to an acks=0 producer, errors included.
        return None
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, index), outcome in zip(keys, outcomes, strict=True):
        by_topic.setdefault(topic, []).append(_partition_response(index, outcome))
    return {
        "responses": [
            {"name": name, "partition_responses": parts} for name, parts in by_topic.items()
        ],
        "throttle_time_ms": 0,
    }
