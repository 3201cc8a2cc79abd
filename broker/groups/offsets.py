"""Committed offsets: the records and the store interface the coordinator writes through.

The coordinator owns the rules (who may commit, metadata size); the store only keeps
what it is given. The cluster's store replicates through the Raft metadata; tests use
:class:`broker.groups.memory_store.InMemoryOffsetStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from broker.coordination.group_records import StoredGroup
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
    """The store could not complete an operation at all; ``error_code`` is what clients
    get (a retriable coordinator error, so they try again)."""

    def __init__(self, message: str, error_code: int = ErrorCode.COORDINATOR_NOT_AVAILABLE):
        super().__init__(message)
        self.error_code = int(error_code)


class OffsetStore(Protocol):
    async def commit(
        self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, int]:
        """Store ``offsets`` for ``group`` in one step, replacing earlier commits. Returns
        the error code of each partition the store refused (an unknown partition, say);
        every partition not named was stored."""
        ...

    async def fetch(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The committed offsets of ``group``: of the given partitions (those without a
        commit are absent), or of every partition when ``partitions`` is None."""
        ...

    async def delete(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, int]:
        """Forget the commits of the given partitions, or all of the group's when None.
        Returns the error code of each partition the store refused, as ``commit`` does."""
        ...

    async def groups_with_offsets(self) -> list[str]:
        """Every group that has at least one committed offset."""
        ...

    def stored_group(self, group_id: str) -> StoredGroup | None:
        """The group's membership as its coordinator last stored it."""
        ...

    def stored_group_ids(self) -> list[str]:
        """Every group with stored membership."""
        ...

    async def store_group(self, record: StoredGroup) -> None:
        """Keep `record` as the group's membership. Raises OffsetStoreError if it could
        not be stored (an older generation than the stored one, or no store at all)."""
        ...

    async def forget_group(self, group_id: str) -> None:
        """Drop the group's stored membership, if any."""
        ...
