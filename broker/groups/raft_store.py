"""Committed offsets kept in the Raft-replicated cluster metadata.

Every commit is one Raft entry (all of a request's partitions together); reads come from
this node's applied copy of the metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager

from broker.coordination import MetadataError, MetadataRaft, RaftError, Refusal
from broker.coordination.commands import (
    CommitOffsets,
    DeleteGroupOffsets,
    DeleteOffsets,
    ForgetGroup,
    OffsetEntry,
    StoreGroup,
)
from broker.coordination.group_records import StoredGroup
from broker.coordination.results import OffsetsResult
from broker.coordination.state import ClusterState
from broker.groups.offsets import OffsetAndMetadata, OffsetStoreError, TopicPartition
from broker.protocol.errors import ErrorCode


def _error_code(error: MetadataError) -> int:
    # Refusals carry Kafka's error names where one fits.
    try:
        return int(ErrorCode[error.name])
    except KeyError:
        return int(ErrorCode.UNKNOWN_SERVER_ERROR)


class RaftOffsetStore:
    def __init__(self, raft: MetadataRaft, propose_timeout_s: float | None = None,
                 reading: Callable[[], AbstractContextManager[ClusterState]] | None = None) -> None:
        """`reading`: the node's lock-free copy of the applied metadata
        (AppliedMetadata.reading); without one, the Raft wrapper's own, under its lock."""
        self._raft = raft
        self._timeout = propose_timeout_s
        self._reading = reading or raft.reading

    async def _propose(
        self, command: CommitOffsets | DeleteOffsets | DeleteGroupOffsets | StoreGroup | ForgetGroup
    ) -> object:
        try:
            return await self._raft.propose(command, self._timeout)
        except RaftError as exc:
            # Whether or not it was applied, the client must retry; it may find another
            # coordinator by then.
            raise OffsetStoreError(
                f"metadata write failed: {exc}", ErrorCode.COORDINATOR_NOT_AVAILABLE
            ) from exc

    async def commit(
        self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, int]:
        entries = [
            OffsetEntry(tp.topic, tp.partition, om.offset, om.leader_epoch, om.metadata)
            for tp, om in offsets.items()
        ]
        result = await self._propose(CommitOffsets(group, entries))
        return self._refused(result, offsets.keys())

    async def fetch(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        with self._reading() as state:
            committed = state.committed_offsets(group)
        found: dict[TopicPartition, OffsetAndMetadata] = {}
        wanted = None if partitions is None else {(tp.topic, tp.partition) for tp in partitions}
        for (topic, partition), c in committed.items():
            if wanted is None or (topic, partition) in wanted:
                found[TopicPartition(topic, partition)] = OffsetAndMetadata(
                    c.offset, c.leader_epoch, c.metadata or "", c.commit_ms
                )
        return found

    async def delete(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, int]:
        if partitions is None:
            await self._propose(DeleteGroupOffsets(group))
            # A group with nothing committed has nothing to delete: not an error here.
            return {}
        wanted = list(partitions)
        result = await self._propose(
            DeleteOffsets(group, [(tp.topic, tp.partition) for tp in wanted])
        )
        if isinstance(result, Refusal) and result.error is MetadataError.GROUP_ID_NOT_FOUND:
            return {}
        return self._refused(result, wanted)

    async def groups_with_offsets(self) -> list[str]:
        with self._reading() as state:
            return state.groups_with_offsets()

    def stored_group(self, group_id: str) -> StoredGroup | None:
        with self._reading() as state:
            return state.stored_group(group_id)

    def stored_group_ids(self) -> list[str]:
        with self._reading() as state:
            return state.stored_group_ids()

    async def store_group(self, record: StoredGroup) -> None:
        result = await self._propose(StoreGroup.of(record))
        if isinstance(result, Refusal):
            raise OffsetStoreError(f"group {record.group_id} not stored: {result.message}",
                                   _error_code(result.error))

    async def forget_group(self, group_id: str) -> None:
        await self._propose(ForgetGroup(group_id))

    @staticmethod
    def _refused(result: object, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        if isinstance(result, Refusal):
            code = _error_code(result.error)
            return {tp: code for tp in partitions}
        if not isinstance(result, OffsetsResult):
            raise OffsetStoreError(
                f"unexpected metadata result {result!r}", ErrorCode.UNKNOWN_SERVER_ERROR
            )
        return {
            TopicPartition(o.topic, o.partition): _error_code(o.error)
            for o in result.partitions
            if o.error is not None
        }
