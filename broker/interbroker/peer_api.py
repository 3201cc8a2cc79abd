"""What one node asks another, as typed calls: the one place that knows which Kafka API
and version each node-to-node request uses, how its body is built and its answer read,
and which connection it travels on.

Node-to-node requests are ordinary Kafka requests (the peer's handlers serve them, and
know a proven node by the connection's identity, interbroker/client.py). A Kafka server
answers one connection's requests in order, so each use has its own connection to each
peer: a follower's long-polling fetch, a proxied read and a failover's tail fetch never
wait behind each other. Forwarded produce requests travel on a connection per client
connection (up to FORWARD_CHANNELS of them per peer), so one client's slow or
timed-out forward holds up, or fails, no other client's.

Every call raises PeerUnavailable when the peer is unknown, unreachable or silent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.interbroker.client import PeerPool, PeerUnavailable
from broker.protocol import api_key_for_name
from broker.protocol.errors import ErrorCode

# The versions this node speaks to its peers (every node of a cluster runs the same
# code, so these are always served).
VERSIONS: Mapping[str, int] = {
    "Produce": 9,
    "Fetch": 12,
    "ListOffsets": 7,  # the first with the max-timestamp query
    "DescribeProducers": 0,
}
# Forwarded produce requests: a connection per client connection, up to this many per
# peer (client connections beyond it share them).
FORWARD_CHANNELS = 256
INT32_MAX = 2**31 - 1

PartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class FetchPart:
    topic: str
    partition: int
    offset: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class FetchedPart:
    error: ErrorCode
    high_watermark: int
    log_start_offset: int
    records: Any  # bytes or memoryview; empty when there are none


@dataclass(frozen=True, slots=True)
class ProducedPart:
    error: ErrorCode
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    error_message: str | None


@dataclass(frozen=True, slots=True)
class ProducerEntry:
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int


class PeerApi:
    def __init__(self, pool: PeerPool, address_of: Callable[[int], tuple[str, int] | None],
                 node_id: int) -> None:
        """`address_of(node)`: where a peer serves Kafka requests, from the metadata."""
        self._pool = pool
        self._address_of = address_of
        self._node_id = node_id

    async def _request(self, peer: int, api: str, body: dict[str, Any], *, timeout: float,
                       channel: str) -> Any:
        address = self._address_of(peer)
        if address is None:
            raise PeerUnavailable(f"node {peer} is not registered")
        return await self._pool.request(*address, api_key_for_name(api), VERSIONS[api], body,
                                        timeout=timeout, channel=channel)

    # -- produce ----------------------------------------------------------------------

    async def forward_produce(self, leader: int, parts: Mapping[PartitionKey, Any], *, acks: int,
                              timeout_ms: int, timeout_s: float,
                              client_connection: int) -> dict[PartitionKey, ProducedPart]:
        """Write `parts` (records per partition) on their leader, as one Produce request;
        its answer per partition. A partition the answer leaves out is "not leader"."""
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for (topic, index), records in parts.items():
            by_topic.setdefault(topic, []).append({"index": index, "records": records})
        body = {
            "transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
            "topic_data": [{"name": t, "partition_data": ps} for t, ps in by_topic.items()],
        }
        answer = await self._request(leader, "Produce", body, timeout=timeout_s,
                                     channel=f"produce-{client_connection % FORWARD_CHANNELS}")
        out: dict[PartitionKey, ProducedPart] = {}
        for topic in answer.responses:
            for p in topic.partition_responses:
                out[(topic.name, p.index)] = ProducedPart(
                    ErrorCode(p.error_code), p.base_offset, p.log_append_time_ms,
                    p.log_start_offset, p.error_message)
        missing = ProducedPart(ErrorCode.NOT_LEADER_OR_FOLLOWER, -1, -1, -1, None)
        return {key: out.get(key, missing) for key in parts}

    # -- fetch ------------------------------------------------------------------------

    async def _fetch(self, peer: int, parts: Sequence[FetchPart], *, as_replica: bool,
                     max_wait_ms: int, max_bytes: int, timeout: float,
                     channel: str) -> dict[PartitionKey, FetchedPart]:
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for p in parts:
            by_topic.setdefault(p.topic, []).append({
                "partition": p.partition, "fetch_offset": p.offset,
                "partition_max_bytes": p.max_bytes, "current_leader_epoch": -1,
            })
        body = {
            # A replica id marks a follower's fetch: the leader counts its progress.
            "replica_id": self._node_id if as_replica else -1,
            "max_wait_ms": max_wait_ms, "min_bytes": 1 if max_wait_ms else 0,
            "max_bytes": max_bytes, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
        }
        answer = await self._request(peer, "Fetch", body, timeout=timeout, channel=channel)
        return {
            (t.topic, p.partition_index): FetchedPart(
                ErrorCode(p.error_code), p.high_watermark, p.log_start_offset,
                p.records if p.records is not None else b"")
            for t in answer.responses for p in t.partitions
        }

    async def follower_fetch(self, leader: int, parts: Sequence[FetchPart], *, max_wait_ms: int,
                             max_bytes: int) -> dict[PartitionKey, FetchedPart]:
        """A follower's long-polling fetch from the segments' leader."""
        return await self._fetch(leader, parts, as_replica=True, max_wait_ms=max_wait_ms,
                                 max_bytes=max_bytes, timeout=max_wait_ms / 1000 + 10,
                                 channel="replication")

    async def read_held(self, holder: int, parts: Sequence[FetchPart], *,
                        timeout: float = 10.0) -> dict[PartitionKey, FetchedPart]:
        """What `holder` has of these partitions locally, answered at once: a read
        proxied for a client of this node."""
        return await self._fetch(holder, parts, as_replica=False, max_wait_ms=0,
                                 max_bytes=INT32_MAX, timeout=timeout, channel="fetch")

    async def fetch_tail(self, follower: int, part: FetchPart, *, timeout: float) -> FetchedPart | None:
        """What another in-sync follower holds past this node's end, before a failover
        seals the segment there. None when the answer leaves the partition out."""
        got = await self._fetch(follower, [part], as_replica=True, max_wait_ms=0,
                                max_bytes=part.max_bytes, timeout=timeout, channel="failover")
        return got.get((part.topic, part.partition))

    async def fetch_for_copy(self, holder: int, part: FetchPart, *,
                             timeout: float) -> FetchedPart | None:
        """A piece of a sealed segment, for the copy this node is making of it."""
        got = await self._fetch(holder, [part], as_replica=False, max_wait_ms=0,
                                max_bytes=part.max_bytes, timeout=timeout, channel="segment-copy")
        return got.get((part.topic, part.partition))

    # -- offsets and producers --------------------------------------------------------

    async def list_offset_held(self, holder: int, topic: str, partition: int, timestamp: int, *,
                               timeout: float) -> tuple[ErrorCode, int, int]:
        """(error, timestamp, offset): `holder`'s ListOffsets answer from its own data."""
        body = {
            "replica_id": -1, "isolation_level": 0,
            "topics": [{"name": topic, "partitions": [{
                "partition_index": partition, "current_leader_epoch": -1, "timestamp": timestamp,
            }]}],
        }
        answer = await self._request(holder, "ListOffsets", body, timeout=timeout, channel="offsets")
        try:
            p = answer.topics[0].partitions[0]
        except IndexError:
            raise PeerUnavailable(f"node {holder} left {topic}-{partition} out of its answer") from None
        return ErrorCode(p.error_code), int(p.timestamp), int(p.offset)

    async def producers_of(self, peer: int, topic: str, partition: int, *,
                           timeout: float) -> list[ProducerEntry]:
        """The idempotent producers `peer` knows for the partition (what a new segment
        leader learns from the previous one)."""
        answer = await self._request(
            peer, "DescribeProducers",
            {"topics": [{"name": topic, "partition_indexes": [partition]}]},
            timeout=timeout, channel="producers")
        try:
            part = answer.topics[0].partitions[0]
        except IndexError:
            raise PeerUnavailable(f"node {peer} left {topic}-{partition} out of its answer") from None
        if part.error_code != ErrorCode.NONE:
            raise PeerUnavailable(f"node {peer} answered {ErrorCode(part.error_code).name}")
        return [ProducerEntry(p.producer_id, p.producer_epoch, p.last_sequence, p.last_timestamp)
                for p in part.active_producers]

