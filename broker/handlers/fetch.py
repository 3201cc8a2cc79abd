"""Fetch: whole batches from each partition's log, long-polling until min_bytes or
max_wait_ms.

A partition's data lives on the nodes that led its segments. This node reads what it
holds and asks the holder of the segment that contains the fetch offset for the rest
(over an internal Fetch, which the holder answers from its local data only), so a
client can fetch any offset from any node.

Fetch sessions (KIP-227) are refused the way the protocol allows: every answer carries
session id 0, which tells the client that no session was created and that its next
request must again be a full one. Clients handle this; it costs request size, not
correctness.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broker.coordination.topology_watch import TopologyWatch
from broker.handlers.fetch_routing import route_fetch
from broker.handlers.pacing import Pacer
from broker.handlers.registry import Body, handles
from broker.interbroker.client import PeerUnavailable
from broker.interbroker.peer_api import FetchPart
from broker.leadership.readiness import steps_due
from broker.log import OffsetNotHeldError, OffsetOutOfRangeError
from broker.log.errors import LogStorageError
from broker.partitions.replica import PartitionReplica
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
REMOTE_POLL_S = 0.05


@dataclass(slots=True)
class _Wanted:
    topic: str | None
    topic_id: bytes
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int
    # Filled from the metadata at each read.
    holder: int = -1
    # Other live nodes that should hold the sealed segment, tried in turn when the
    # holder answers that it lacks the offset (a follower that lagged at the seal).
    spare_holders: list[int] = field(default_factory=list)
    leader: int = -1
    # This node leads the partition but has not taken leadership up yet.
    taking_up: bool = False
    preferred_replica: int = -1
    high_watermark: int = -1
    replica: PartitionReplica | None = None
    error: ErrorCode = ErrorCode.NONE
    answer: dict[str, Any] = field(default_factory=dict)


def _answer(partition: int, error: ErrorCode, hw: int = -1, log_start: int = -1,
            records: Any = b"") -> dict[str, Any]:
    # Records are never null: librdkafka refuses a null record set (size -1) even on an
    # error, and Kafka sends an empty one.
    return {
        "partition_index": partition,
        "error_code": error,
        "high_watermark": hw,
        "last_stable_offset": hw,
        "log_start_offset": log_start,
        "aborted_transactions": None if error != ErrorCode.NONE else [],
        "preferred_read_replica": -1,
        "records": records,
    }


def _resolve(node: Node, request: Request) -> list[_Wanted]:
    """The partitions asked for, with topic ids resolved to names (Fetch v13+).

    A partition named twice is fetched once, where it was first named, with what it
    was last asked with: Kafka keeps a sessionless fetch's partitions in a map the same
    way, and copies would each cost a lookup and a place in the answer.
    """
    wanted: dict[tuple[str | bytes | None, int], _Wanted] = {}
    by_id = request.api_version >= 13
    for t in request.body.topics:
        if by_id:
            topic_id = t.topic_id.bytes if isinstance(t.topic_id, uuid.UUID) else bytes(t.topic_id)
            with node.metadata() as state:
                found = state.topic_by_id(topic_id)
            name = found.name if found is not None else None
        else:
            name, topic_id = t.topic, bytes(16)
        key_topic = topic_id if by_id else name
        for p in t["partitions"]:
            # By key: a Container's attribute access costs ten times as much.
            wanted[(key_topic, p["partition"])] = _Wanted(
                name, topic_id, p["partition"], p["fetch_offset"], p["partition_max_bytes"],
                p["current_leader_epoch"])
    return list(wanted.values())


def _locate(node: Node, w: _Wanted, local_only: bool, client_rack: str = "") -> None:
    """Where w is read (handlers/fetch_routing.py), and this node's replica when here."""
    w.error, w.replica, w.holder, w.preferred_replica = ErrorCode.NONE, None, -1, -1
    w.spare_holders, w.taking_up = [], False
    if w.topic is None:
        w.error = ErrorCode.UNKNOWN_TOPIC_ID
        return
    assert node.replicas is not None
    copy = node.replicas.get(w.topic, w.partition)
    with node.metadata() as state:
        route = route_fetch(node.node_id, state, time.time_ns() // 1_000_000, w.topic, w.partition,
                            w.fetch_offset, current_leader_epoch=w.current_leader_epoch,
                            local_only=local_only, client_rack=client_rack, copy=copy)
    w.error, w.leader, w.high_watermark = route.error, route.leader, route.high_watermark
    w.holder, w.spare_holders, w.preferred_replica = route.holder, list(route.spare_holders), route.preferred_replica
    if route.error != ErrorCode.NONE or route.holder != node.node_id:
        return
    assert route.active is not None
    if node.replicas.is_offline(w.topic, w.partition):
        w.error = ErrorCode.KAFKA_STORAGE_ERROR
        return
    replica = node.replicas.get_or_open(w.topic, w.partition)
    if route.leader == node.node_id:
        if steps_due(node.node_id, route.active, replica):
            # Leadership came here and this node has not taken it up yet (the metadata
            # apply is being followed): a read changes nothing, and what the replica
            # holds past the last seal may yet be cut.
            w.error, w.taking_up = ErrorCode.NOT_LEADER_OR_FOLLOWER, True
            return
        w.high_watermark = replica.high_watermark
    else:
        w.high_watermark = max(w.high_watermark, replica.high_watermark)
    w.replica = replica


def _read_local(w: _Wanted, limit: int, follower: int) -> dict[str, Any]:
    replica = w.replica
    assert replica is not None
    if follower >= 0:
        # A follower's fetch offset is its log end: what it holds moves the high
        # watermark, and it reads past the high watermark to catch up.
        replica.follower_fetched(follower, w.fetch_offset)
        w.high_watermark = max(w.high_watermark, replica.high_watermark)
    try:
        result = replica.read(w.fetch_offset, max(limit, 1), for_follower=follower >= 0)
    except OffsetOutOfRangeError:
        return _answer(w.partition, ErrorCode.OFFSET_OUT_OF_RANGE, w.high_watermark,
                       replica.log_start_offset)
    except OffsetNotHeldError:
        # The metadata says this node led the segment, but its data is not here (a lost
        # disk, or a replica rebuilt empty): nothing to serve for this offset.
        return _answer(w.partition, ErrorCode.OFFSET_OUT_OF_RANGE, w.high_watermark,
                       replica.log_start_offset)
    except LogStorageError:
        return _answer(w.partition, ErrorCode.KAFKA_STORAGE_ERROR, w.high_watermark)
    return _answer(w.partition, ErrorCode.NONE, w.high_watermark, replica.log_start_offset,
                   result.data)


async def _read_remote(node: Node, holder: int, items: list[_Wanted]) -> None:
    """Ask `holder` for these partitions (one request) and fill in their answers."""
    parts = [FetchPart(w.topic or "", w.partition, w.fetch_offset, w.partition_max_bytes) for w in items]
    try:
        got = await node.peer_api.read_held(holder, parts)
    except PeerUnavailable as exc:
        log.info("fetch from node %d failed: %s", holder, exc)
        for w in items:
            # Retriable: the client refreshes its metadata and tries again.
            w.answer = _answer(w.partition, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return
    for w in items:
        p = got.get((w.topic or "", w.partition))
        if p is None:
            w.answer = _answer(w.partition, ErrorCode.UNKNOWN_SERVER_ERROR)
            continue
        hw = max(w.high_watermark, p.high_watermark)
        w.answer = _answer(w.partition, p.error, hw, p.log_start_offset, p.records)


async def _read_all(node: Node, wanted: list[_Wanted], max_bytes: int, local_only: bool,
                    follower: int = -1, client_rack: str = "") -> tuple[int, bool]:
    pacer = Pacer()
    for w in wanted:
        _locate(node, w, local_only, client_rack)
        await pacer.pause_if_due()
    if any(w.taking_up for w in wanted):
        # The apply that gave this node leadership is queued on this loop, with its
        # readiness steps (leadership/readiness.py): let it run, then look again.
        await asyncio.sleep(0)
        for w in wanted:
            if w.taking_up:
                _locate(node, w, local_only, client_rack)
    remote: dict[int, list[_Wanted]] = {}
    for w in wanted:
        if w.error == ErrorCode.NONE and w.replica is None and w.holder >= 0:
            remote.setdefault(w.holder, []).append(w)
    await asyncio.gather(*(_read_remote(node, h, items) for h, items in remote.items()))
    # A holder without the offset (it has only the head of the sealed segment) passes
    # the read on to the next one, so no single short copy stalls a consumer.
    while retry := [w for items in remote.values() for w in items
                    if w.spare_holders and w.answer.get("error_code") == ErrorCode.NOT_LEADER_OR_FOLLOWER]:
        remote = {}
        for w in retry:
            w.holder = w.spare_holders.pop(0)
            remote.setdefault(w.holder, []).append(w)
        await asyncio.gather(*(_read_remote(node, h, items) for h, items in remote.items()))

    budget, total, errors = max_bytes, 0, False
    for w in wanted:
        await pacer.pause_if_due()
        if w.preferred_replica >= 0:
            w.answer = _answer(w.partition, ErrorCode.NONE, w.high_watermark)
            w.answer["preferred_read_replica"] = w.preferred_replica
            errors = True  # answer now: the client goes to the replica
            continue
        if w.error != ErrorCode.NONE:
            w.answer = _answer(w.partition, w.error, w.high_watermark)
        elif w.replica is not None:
            limit = min(w.partition_max_bytes, budget)
            w.answer = (_answer(w.partition, ErrorCode.NONE, w.high_watermark,
                                w.replica.log_start_offset, b"")
                        if limit <= 0 and total > 0 else _read_local(w, limit, follower))
        data = w.answer.get("records") or b""
        # Only the first non-empty partition may exceed its limits (so that a batch
        # larger than the limits can still be consumed); later ones wait their turn.
        if total > 0 and len(data) > min(w.partition_max_bytes, budget):
            w.answer["records"] = b""
            data = b""
        total += len(data)
        budget -= len(data)
        errors = errors or w.answer["error_code"] != ErrorCode.NONE
    return total, errors


async def _wait_for_data(replicas: list[PartitionReplica], timeout: float,
                         topology: TopologyWatch | None = None) -> None:
    """Until one of `replicas` has news, `timeout` passes or (given `topology`) the
    metadata's topology moves."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for replica in replicas:
        replica.add_waiter(waiter)
    if topology is not None:
        topology.add_waiter(waiter)
    try:
        async with asyncio.timeout(timeout):
            await waiter
    except TimeoutError:
        pass
    finally:
        for replica in replicas:
            replica.remove_waiter(waiter)
        if topology is not None:
            topology.remove_waiter(waiter)


@handles("Fetch", 4)
async def fetch(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    if version >= 7 and body.session_id != 0:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
                "session_id": 0, "responses": []}
    # Another node asking for what this node holds: answer from local data only.
    local_only = client.node_id is not None
    follower = body.replica_id if version <= 14 else body.replica_state.replica_id
    follower = follower if local_only else -1
    client_rack = body.rack_id if version >= 11 and not local_only else ""
    asked = _resolve(node, request)
    denied = denied_topics(node, client, request, AclOperation.READ, {w.topic for w in asked})
    for w in asked:
        if w.topic in denied:
            w.answer = _answer(w.partition, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    wanted = [w for w in asked if w.topic not in denied] if denied else asked
    max_bytes = body.max_bytes if version >= 3 else INT32_MAX
    loop = asyncio.get_running_loop()
    max_wait_ms = max(body.max_wait_ms, 0)
    deadline = loop.time() + max_wait_ms / 1000
    seen_marks: list[int] | None = None
    while True:
        total, errors = await _read_all(node, wanted, max_bytes, local_only, follower, client_rack)
        remaining = deadline - loop.time()
        if errors or not wanted or total >= body.min_bytes or remaining <= 0:
            break
        local = [w.replica for w in wanted if w.replica is not None]
        if follower >= 0:
            # A follower also learns the high watermark from these answers; when it
            # moves, answer at once so consumers reading from the follower see it.
            marks = [r.high_watermark for r in local]
            if seen_marks is not None and marks != seen_marks:
                break
            seen_marks = marks
        if local:
            # New data here wakes the wait; new data on other nodes is seen at the next
            # read (clients fetch from each partition's leader, so this mix is rare).
            if follower >= 0:
                # A follower is answered when the topology moves too: a partition it now
                # follows here joins its next request instead of waiting out this one.
                topology = node.topology.version
                await _wait_for_data(local, remaining, node.topology)
                if node.topology.version != topology:
                    break  # with the (empty) answers just read
            else:
                await _wait_for_data(local, remaining)
            continue
        # Nothing here: ask the holders again shortly. (Their long poll would hold the
        # one connection this node shares with every proxied fetch to that holder.)
        await asyncio.sleep(min(REMOTE_POLL_S, remaining))

    responses: list[dict[str, Any]] = []
    index: dict[tuple[str | None, bytes], dict[str, Any]] = {}
    for w in asked:
        key = (w.topic, w.topic_id)
        entry = index.get(key)
        if entry is None:
            entry = {"topic": w.topic or "", "topic_id": uuid.UUID(bytes=w.topic_id), "partitions": []}
            index[key] = entry
            responses.append(entry)
        entry["partitions"].append(w.answer)
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "session_id": 0,
            "responses": responses}
