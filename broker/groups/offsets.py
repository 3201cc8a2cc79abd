"""Committed offsets: the records and the store interface the coordinator writes through.

The coordinator owns the rules (who may commit, metadata size); the store only keeps
what it is given. The cluster's store replicates through the Raft metadata; tests use
:class:`broker.groups.memory_store.InMemoryOffsetStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from broker.protocol.errors import ErrorCode


@dataclass(slots=True, frozen=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(slots=True, frozen=True)
class OffsetAndMetadata:
    offset: int
    # The leader epoch the consumer saw with this offset; -1 when it did not say.
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


class OffsetStoreError(Exception):
    """The store could not complete an operation; ``error_code`` is what clients get
    (for instance NOT_COORDINATOR when this node can no longer write the metadata)."""

    def __init__(self, message: str, error_code: int = ErrorCode.COORDINATOR_NOT_AVAILABLE):
        super().__init__(message)
        self.error_code = int(error_code)


class OffsetStore(Protocol):
    async def commit(self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Store all of ``offsets`` for ``group`` atomically, replacing earlier commits."""
        ...

    async def fetch(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The committed offsets of ``group``: of the given partitions (those without a
        commit are absent), or of every partition when ``partitions`` is None."""
        ...

    async def delete(self, group: str, partitions: Iterable[TopicPartition] | None) -> None:
        """Forget the commits of the given partitions, or all of the group's when None."""
        ...

    async def groups_with_offsets(self) -> list[str]:
        """Every group that has at least one committed offset."""
        ...
