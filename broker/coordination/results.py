"""What an applied command returns to its proposer (immutable: it crosses threads)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MetadataError


@dataclass(slots=True, frozen=True)
class Applied:
    """A command that changed the state and has nothing more to say."""

    version: int


@dataclass(slots=True, frozen=True)
class BrokerRegistered:
    node_id: int
    broker_epoch: int


@dataclass(slots=True, frozen=True)
class TopicCreated:
    name: str
    topic_id: bytes
    num_partitions: int
    replication_factor: int


@dataclass(slots=True, frozen=True)
class TopicDeleted:
    name: str
    topic_id: bytes


@dataclass(slots=True, frozen=True)
class PartitionOutcome:
    """Per-partition outcome of a batch command; error None means applied."""

    topic: str
    partition: int
    error: MetadataError | None = None


@dataclass(slots=True, frozen=True)
class OffsetsResult:
    group: str
    partitions: tuple[PartitionOutcome, ...]


@dataclass(slots=True, frozen=True)
class GroupOffsetsDeleted:
    group: str
    removed: int


@dataclass(slots=True, frozen=True)
class GroupStored:
    group_id: str
    generation_id: int


@dataclass(slots=True, frozen=True)
class ProducerIdBlock:
    node_id: int
    first_id: int
    size: int

    @property
    def last_id(self) -> int:
        return self.first_id + self.size - 1


@dataclass(slots=True, frozen=True)
class SegmentRolled:
    topic: str
    partition: int
    sealed_epoch: int
    end_offset: int
    new_epoch: int
    new_leader: int
    replicas: tuple[int, ...]


@dataclass(slots=True, frozen=True)
class LeaseGranted:
    topic: str
    partition: int
    epoch: int
    holder: int
    expiry_ms: int


@dataclass(slots=True, frozen=True)
class IsrUpdated:
    topic: str
    partition: int
    epoch: int
    isr: tuple[int, ...]


@dataclass(slots=True, frozen=True)
class ClusterIdSet:
    cluster_id: str
