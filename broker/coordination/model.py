"""The records the cluster-metadata state machine is made of.

Every record converts to and from a JSON-safe dict; snapshots and equality checks between
nodes rely on that conversion being exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Broker:
    node_id: int
    host: str
    port: int
    rack: str | None
    raft_address: str | None
    registered_ms: int
    last_heartbeat_ms: int
    # Raised on every registration, so a restarted broker is told apart from its old
    # incarnation (Kafka's broker epoch).
    broker_epoch: int
    # Listener name -> (host, port) told to clients that came in on that listener.
    endpoints: dict[str, tuple[str, int]] = field(default_factory=dict)
    # The session timeout this broker registered with (its broker_session_timeout_ms
    # setting); None: the cluster's broker.session.timeout.ms.
    session_timeout_ms: int | None = None
    # The node lease its heartbeats were granted (wall-clock ms; 0: never one). While it
    # runs, no other node may take over a segment this broker leads.
    lease_expiry_ms: int = 0

    def alive(self, now_ms: int, default_session_timeout_ms: int) -> bool:
        timeout = self.session_timeout_ms if self.session_timeout_ms is not None else default_session_timeout_ms
        return now_ms < self.last_heartbeat_ms + timeout

    def address_for(self, listener: str) -> tuple[str, int] | None:
        """Where a client of `listener` reaches this broker; None when it does not
        have that listener. A broker registered without endpoints has one address."""
        if not self.endpoints:
            return self.host, self.port
        return self.endpoints.get(listener)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "host": self.host,
            "port": self.port,
            "rack": self.rack,
            "raft_address": self.raft_address,
            "registered_ms": self.registered_ms,
            "last_heartbeat_ms": self.last_heartbeat_ms,
            "broker_epoch": self.broker_epoch,
            "endpoints": {name: [host, port] for name, (host, port) in sorted(self.endpoints.items())},
            "session_timeout_ms": self.session_timeout_ms,
            "lease_expiry_ms": self.lease_expiry_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Broker:
        fields = dict(d)
        # Snapshots from before listeners had names have no endpoints.
        endpoints = fields.pop("endpoints", {})
        return cls(**fields, endpoints={str(k): (str(v[0]), int(v[1])) for k, v in endpoints.items()})


@dataclass(slots=True)
class Segment:
    """One link of a partition's chain. Its epoch is the partition's leader epoch while
    it is the active (last) segment."""

    epoch: int
    base_offset: int
    end_offset: int | None  # exclusive; None while the segment is active
    leader: int
    replicas: list[int]
    lease_holder: int | None = None
    lease_expiry_ms: int = 0
    # The replicas that hold everything acknowledged with acks=all (the leader's view,
    # committed through UpdateIsr). None: every replica, as at the segment's start.
    isr: list[int] | None = None
    # Sealed segments only: nodes copying it to restore its replication factor; each
    # becomes a replica once its copy is verified (SegmentCopied).
    copying: list[int] = field(default_factory=list)

    @property
    def in_sync(self) -> list[int]:
        return list(self.replicas) if self.isr is None else list(self.isr)

    @property
    def sealed(self) -> bool:
        return self.end_offset is not None

    def contains(self, offset: int) -> bool:
        if offset < self.base_offset:
            return False
        return self.end_offset is None or offset < self.end_offset

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "base_offset": self.base_offset,
            "end_offset": self.end_offset,
            "leader": self.leader,
            "replicas": list(self.replicas),
            "lease_holder": self.lease_holder,
            "lease_expiry_ms": self.lease_expiry_ms,
            "isr": None if self.isr is None else list(self.isr),
            "copying": list(self.copying),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segment:
        isr = d.get("isr")
        return cls(**{**d, "replicas": list(d["replicas"]), "isr": None if isr is None else list(isr),
                      "copying": list(d.get("copying", []))})


@dataclass(slots=True)
class Partition:
    index: int
    segments: list[Segment] = field(default_factory=list)
    # The replica set a client asked for (CreateTopics/CreatePartitions assignments):
    # later segments are placed on these nodes while any of them is alive.
    assigned: list[int] | None = None

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    @property
    def leader(self) -> int:
        return self.active.leader

    @property
    def leader_epoch(self) -> int:
        return self.active.epoch

    def segment_for_offset(self, offset: int) -> Segment | None:
        # Chains are short (one link per roll) but a long-lived partition can gather many
        # links, so search by base offset instead of scanning.
        lo, hi = 0, len(self.segments) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            seg = self.segments[mid]
            if offset < seg.base_offset:
                hi = mid - 1
            elif seg.end_offset is not None and offset >= seg.end_offset:
                lo = mid + 1
            else:
                return seg
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "segments": [s.to_dict() for s in self.segments]}
        if self.assigned is not None:
            out["assigned"] = list(self.assigned)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partition:
        assigned = d.get("assigned")
        return cls(
            d["index"],
            [Segment.from_dict(s) for s in d["segments"]],
            None if assigned is None else [int(n) for n in assigned],
        )


@dataclass(slots=True)
class Topic:
    name: str
    topic_id: bytes  # 16-byte UUID chosen by the proposer
    replication_factor: int
    config: dict[str, str]
    partitions: list[Partition]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic_id": self.topic_id.hex(),
            "replication_factor": self.replication_factor,
            "config": dict(self.config),
            "partitions": [p.to_dict() for p in self.partitions],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Topic:
        return cls(
            d["name"],
            bytes.fromhex(d["topic_id"]),
            d["replication_factor"],
            dict(d["config"]),
            [Partition.from_dict(p) for p in d["partitions"]],
        )


@dataclass(slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int  # -1 when the client sent none
    metadata: str | None
    commit_ms: int
    expire_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "leader_epoch": self.leader_epoch,
            "metadata": self.metadata,
            "commit_ms": self.commit_ms,
            "expire_ms": self.expire_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CommittedOffset:
        return cls(**d)
