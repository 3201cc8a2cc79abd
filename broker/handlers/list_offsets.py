"""ListOffsets: earliest, latest, by timestamp, and the max-timestamp offset.

A partition's data is spread over the nodes that led its segments, so the partition's
leader answers from the metadata's segment chain and the data of every holder: latest
is its own high watermark; earliest is the log start of the first segment whose holder
still has data (retention and DeleteRecords move it); a timestamp query asks every
holder and keeps the smallest offset found. Holders are asked over the internal client,
on connections that proved they come from a node, and answer such requests from their
local data only, whether they lead the partition or not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.coordination.model import Segment
from broker.handlers.access import check_leader_epoch, local_leader_to_read
from broker.handlers.pacing import Pacer, chunks
from broker.handlers.registry import Body, handles
from broker.interbroker.client import PeerUnavailable
from broker.log.errors import LogClosedError, LogStorageError
from broker.partitions.replica import PartitionReplica
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
EARLIEST_TIERED = -5
EARLIEST_KINDS = (EARLIEST, EARLIEST_LOCAL, EARLIEST_TIERED)

PEER_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Found:
    """One node's (or the partition's) answer to one query."""

    error: ErrorCode = ErrorCode.NONE
    timestamp: int = -1
    offset: int = -1


def lookup(replica: PartitionReplica, timestamp: int) -> tuple[int, int]:
    """(timestamp, offset) for one query over this node's local data of the partition."""
    if timestamp == LATEST:
        return -1, replica.high_watermark
    if timestamp in EARLIEST_KINDS:
        return -1, replica.log_start_offset
    if timestamp == MAX_TIMESTAMP:
        return replica.log.log.largest_timestamp_offset()
    found = replica.log.log.offset_for_timestamp(timestamp)
    if found is None or found[0] >= replica.high_watermark:
        return -1, -1
    offset, ts = found
    return ts, offset


def _local(replica: PartitionReplica | None, timestamp: int) -> Found:
    if replica is None:
        return Found()  # this node holds nothing of the partition
    try:
        ts, offset = lookup(replica, timestamp)
    except LogStorageError:
        return Found(ErrorCode.KAFKA_STORAGE_ERROR)
    except LogClosedError:
        # Closed under the lookup: the topic is being deleted.
        return Found(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return Found(ErrorCode.NONE, ts, offset)


async def _local_off_loop(replica: PartitionReplica | None, timestamp: int) -> Found:
    """`_local`, with the lookups that read the log (by time, and the max timestamp) on a
    worker thread: they walk batch headers and look into a batch's records, which can
    take a while, and the log lets appends go on meanwhile."""
    if replica is None or timestamp in (LATEST, *EARLIEST_KINDS):
        return _local(replica, timestamp)
    return await asyncio.to_thread(_local, replica, timestamp)


async def _here(node: Node, topic: str, partition: int, timestamp: int) -> Found:
    """This node's own answer from its local data."""
    assert node.replicas is not None
    if node.replicas.is_offline(topic, partition):
        return Found(ErrorCode.KAFKA_STORAGE_ERROR)
    return await _local_off_loop(node.replicas.get(topic, partition), timestamp)


async def _ask(node: Node, holder: int, topic: str, partition: int, timestamp: int) -> Found:
    """One holder's answer from its local data; this node's own without a request."""
    if holder == node.node_id:
        return await _here(node, topic, partition, timestamp)
    if node.broker_address(holder) is None:
        # Unregistered (removed from the cluster): what it held is gone for good.
        return Found()
    try:
        error, found_timestamp, offset = await node.peer_api.list_offset_held(
            holder, topic, partition, timestamp, timeout=PEER_TIMEOUT_S)
    except PeerUnavailable as exc:
        log.info("ListOffsets on node %d for %s-%d failed: %s", holder, topic, partition, exc)
        return Found(ErrorCode.LEADER_NOT_AVAILABLE)
    return Found(error, found_timestamp, offset)


def _led_by(chain: list[Segment], readers: list[int], holder: int, offset: int) -> bool:
    """Whether `offset` lies in a segment `holder` was asked about: anything else a node
    holds (a tail written past where the metadata sealed its segment) is not the
    partition's."""
    return any(r == holder and s.contains(offset) for s, r in zip(chain, readers, strict=True))


def _readers(node: Node, chain: list[Segment]) -> list[int]:
    """Which node answers for each segment: its leader, which wrote it, while that is
    alive; for a sealed segment whose leader is down or removed, a live replica that
    holds all of it (an in-sync follower, or a copy made after a removal)."""
    now = time.time_ns() // 1_000_000
    out = []
    with node.metadata() as state:
        for segment in chain:
            reader = segment.leader
            if (segment.sealed and reader != node.node_id
                    and not state.broker_alive(reader, now)):
                reader = next((r for r in segment.in_sync if r == node.node_id
                               or state.broker_alive(r, now)), reader)
            out.append(reader)
    return out


async def _earliest(node: Node, topic: str, partition: int, chain: list[Segment],
                    timestamp: int) -> Found:
    """The first offset still held: walk the chain, asking each holder once."""
    starts: dict[int, Found] = {}
    for segment, holder in zip(chain, _readers(node, chain), strict=True):
        if holder not in starts:
            starts[holder] = await _ask(node, holder, topic, partition, timestamp)
        start = starts[holder]
        if start.error != ErrorCode.NONE:
            # Its data may still be there: guessing past it could skip records.
            return Found(start.error)
        if start.offset < 0:
            continue
        if segment.end_offset is None or start.offset < segment.end_offset:
            return Found(ErrorCode.NONE, -1, max(start.offset, segment.base_offset))
    return Found(ErrorCode.NONE, -1, chain[-1].base_offset)


async def _by_time(node: Node, topic: str, partition: int, chain: list[Segment],
                   timestamp: int) -> Found:
    """Smallest offset whose timestamp is >= the target (or, for MAX_TIMESTAMP, the
    offset of the largest timestamp), over every holder."""
    readers = _readers(node, chain)
    holders = list(dict.fromkeys(readers))
    answers = await asyncio.gather(*(_ask(node, h, topic, partition, timestamp) for h in holders))
    best: Found | None = None
    failed: list[int] = []
    for holder, found in zip(holders, answers, strict=True):
        if found.error != ErrorCode.NONE:
            failed.append(holder)
            continue
        if found.offset < 0 or not _led_by(chain, readers, holder, found.offset):
            continue
        if best is None:
            best = found
        elif timestamp == MAX_TIMESTAMP:
            if (found.timestamp, -found.offset) > (best.timestamp, -best.offset):
                best = found
        elif found.offset < best.offset:
            best = found
    if failed:
        # An unreachable holder matters unless the answer precedes all it led (a
        # timestamp query) -- for the max timestamp it always might hold the largest.
        limit = best.offset if best is not None and timestamp != MAX_TIMESTAMP else None
        if any(r in failed and (limit is None or s.base_offset < limit)
               for s, r in zip(chain, readers, strict=True)):
            return Found(ErrorCode.LEADER_NOT_AVAILABLE)
    return best or Found()


async def _on_leader(node: Node, topic: str, partition: int, replica: PartitionReplica,
                     timestamp: int) -> Found:
    if timestamp == LATEST:
        return _local(replica, timestamp)
    with node.metadata() as state:
        found = state.partition(topic, partition)
        chain = list(found.segments) if found is not None else []
    if not chain:
        return Found(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if timestamp in EARLIEST_KINDS:
        return await _earliest(node, topic, partition, chain, timestamp)
    return await _by_time(node, topic, partition, chain, timestamp)


def _epoch_at(node: Node, topic: str, partition: int, offset: int, current: int) -> int:
    with node.metadata() as state:
        segment = state.segment_for_offset(topic, partition, offset)
    return segment.epoch if segment is not None else current


async def _answer_partition(node: Node, topic: str, p: Any, local_only: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "partition_index": p.partition_index, "error_code": ErrorCode.NONE,
        "timestamp": -1, "offset": -1, "leader_epoch": -1,
    }
    if local_only:
        found = await _here(node, topic, p.partition_index, p.timestamp)
        answer.update(error_code=found.error, timestamp=found.timestamp, offset=found.offset)
        return answer
    leadership = await local_leader_to_read(node, topic, p.partition_index)
    replica = leadership.replica
    if replica is None:
        answer["error_code"] = leadership.error
    elif (err := check_leader_epoch(p.current_leader_epoch, leadership.epoch)) != ErrorCode.NONE:
        answer["error_code"] = err
    else:
        found = await _on_leader(node, topic, p.partition_index, replica, p.timestamp)
        answer.update(error_code=found.error)
        if found.error == ErrorCode.NONE:
            answer.update(timestamp=found.timestamp, offset=found.offset)
            if found.offset >= 0:
                answer["leader_epoch"] = _epoch_at(node, topic, p.partition_index, found.offset,
                                                   leadership.epoch)
    return answer


def _error_answer(p: Any, code: ErrorCode) -> dict[str, Any]:
    return {"partition_index": p["partition_index"], "error_code": code,
            "timestamp": -1, "offset": -1, "leader_epoch": -1}


# Partitions looked up at once; between such groups other connections get the loop.
_GROUP = 256
_COUNT_GROUP = 20_000


@handles("ListOffsets", 1)
async def list_offsets(node: Node, client: ClientInfo, request: Request) -> Body:
    # Another node asking what this node holds: answer from local data only.
    local_only = client.node_id is not None
    wanted = request.body.topics
    # Kafka refuses a partition named more than once, every copy of it, with
    # INVALID_REQUEST, and looks none of them up: so the work is one lookup per
    # distinct partition, however often a request repeats one.
    pacer = Pacer()
    named: Counter[tuple[str, int]] = Counter()
    for t in wanted:
        name = t["name"]
        for group in chunks(t["partitions"], _COUNT_GROUP):
            # Read by key: a Container's attribute access costs ten times as much.
            named.update((name, p["partition_index"]) for p in group)
            await pacer.pause_if_due()
    denied = denied_topics(node, client, request, AclOperation.DESCRIBE,
                           dict.fromkeys(t["name"] for t in wanted))
    topics: list[dict[str, Any]] = []
    for t in wanted:
        if t.name in denied:
            topics.append({"name": t.name, "partitions": [
                _error_answer(p, ErrorCode.TOPIC_AUTHORIZATION_FAILED) for p in t.partitions]})
            continue
        answers: list[dict[str, Any]] = []
        for group in chunks(t.partitions, _GROUP):
            once = [named[(t.name, p["partition_index"])] == 1 for p in group]
            found = iter(await asyncio.gather(*(
                _answer_partition(node, t.name, p, local_only)
                for p, single in zip(group, once, strict=True) if single)))
            answers.extend(next(found) if single else _error_answer(p, ErrorCode.INVALID_REQUEST)
                           for p, single in zip(group, once, strict=True))
            await pacer.pause_if_due()
        topics.append({"name": t.name, "partitions": answers})
    return {"throttle_time_ms": 0, "topics": topics}
