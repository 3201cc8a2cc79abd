"""Fetch: whole batches from each partition's log, long-polling until min_bytes or
max_wait_ms.

Fetch sessions (KIP-227) are refused the way the protocol allows: every answer carries
session id 0, which tells the client that no session was created and that its next
request must again be a full one. Clients handle this; it costs request size, not
correctness.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.handlers.access import check_leader_epoch, local_leader
from broker.handlers.registry import Body, handles
from broker.log import OffsetOutOfRangeError
from broker.log.errors import LogStorageError
from broker.partitions.replica import PartitionReplica
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

INT32_MAX = 2**31 - 1


@dataclass(slots=True)
class _Wanted:
    topic: str | None
    topic_id: bytes
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int


def _partition_answer(partition: int, error: ErrorCode, replica: PartitionReplica | None = None,
                      records: Any = None) -> dict[str, Any]:
    hw = replica.high_watermark if replica is not None else -1
    return {
        "partition_index": partition,
        "error_code": error,
        "high_watermark": hw,
        "last_stable_offset": hw,
        "log_start_offset": replica.log_start_offset if replica is not None else -1,
        "aborted_transactions": None if error != ErrorCode.NONE else [],
        "preferred_read_replica": -1,
        "records": records,
    }


def _resolve(node: Node, request: Request) -> tuple[list[_Wanted], dict[bytes, ErrorCode]]:
    """The partitions asked for, with topic ids resolved to names (Fetch v13+)."""
    wanted: list[_Wanted] = []
    unknown_ids: dict[bytes, ErrorCode] = {}
    by_id = request.api_version >= 13
    with node.metadata() as state:
        for t in request.body.topics:
            if by_id:
                topic_id = t.topic_id.bytes if isinstance(t.topic_id, uuid.UUID) else bytes(t.topic_id)
                found = state.topic_by_id(topic_id)
                name = found.name if found is not None else None
                if found is None:
                    unknown_ids[topic_id] = ErrorCode.UNKNOWN_TOPIC_ID
            else:
                name, topic_id = t.topic, bytes(16)
            for p in t.partitions:
                wanted.append(_Wanted(name, topic_id, p.partition, p.fetch_offset,
                                      p.partition_max_bytes, p.current_leader_epoch))
    return wanted, unknown_ids


def _read_all(node: Node, wanted: list[_Wanted], max_bytes: int) -> tuple[list[dict[str, Any]], int, bool, list[PartitionReplica]]:
    answers: list[dict[str, Any]] = []
    replicas: list[PartitionReplica] = []
    budget = max_bytes
    total = 0
    errors = False
    for w in wanted:
        if w.topic is None:
            answers.append(_partition_answer(w.partition, ErrorCode.UNKNOWN_TOPIC_ID))
            errors = True
            continue
        leadership = local_leader(node, w.topic, w.partition)
        replica = leadership.replica
        if replica is None:
            answers.append(_partition_answer(w.partition, leadership.error))
            errors = True
            continue
        epoch_error = check_leader_epoch(w.current_leader_epoch, leadership.epoch)
        if epoch_error != ErrorCode.NONE:
            answers.append(_partition_answer(w.partition, epoch_error, replica))
            errors = True
            continue
        replicas.append(replica)
        limit = min(w.partition_max_bytes, budget)
        if limit <= 0 and total > 0:
            answers.append(_partition_answer(w.partition, ErrorCode.NONE, replica, b""))
            continue
        try:
            result = replica.read(w.fetch_offset, max(limit, 1))
        except OffsetOutOfRangeError:
            answers.append(_partition_answer(w.partition, ErrorCode.OFFSET_OUT_OF_RANGE, replica))
            errors = True
            continue
        except LogStorageError:
            answers.append(_partition_answer(w.partition, ErrorCode.KAFKA_STORAGE_ERROR, replica))
            errors = True
            continue
        data = result.data
        # Only the first non-empty partition may exceed its limits (so that a batch
        # larger than the limits can still be consumed); later ones wait their turn.
        if total > 0 and len(data) > limit:
            data = b""
        total += len(data)
        budget -= len(data)
        answers.append(_partition_answer(w.partition, ErrorCode.NONE, replica, data))
    return answers, total, errors, replicas


async def _wait_for_data(replicas: list[PartitionReplica], timeout: float) -> None:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for replica in replicas:
        replica.add_waiter(waiter)
    try:
        await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        pass
    finally:
        for replica in replicas:
            replica.remove_waiter(waiter)


@handles("Fetch", 4)
async def fetch(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    if version >= 7 and body.session_id != 0:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
                "session_id": 0, "responses": []}
    wanted, _ = _resolve(node, request)
    max_bytes = body.max_bytes if version >= 3 else INT32_MAX
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(body.max_wait_ms, 0) / 1000
    while True:
        answers, total, errors, replicas = _read_all(node, wanted, max_bytes)
        remaining = deadline - loop.time()
        if errors or total >= body.min_bytes or remaining <= 0 or not replicas:
            break
        await _wait_for_data(replicas, remaining)

    responses: list[dict[str, Any]] = []
    index: dict[tuple[str | None, bytes], dict[str, Any]] = {}
    for w, answer in zip(wanted, answers, strict=True):
        key = (w.topic, w.topic_id)
        entry = index.get(key)
        if entry is None:
            entry = {"topic": w.topic or "", "topic_id": uuid.UUID(bytes=w.topic_id), "partitions": []}
            index[key] = entry
            responses.append(entry)
        entry["partitions"].append(answer)
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "session_id": 0,
            "responses": responses}
