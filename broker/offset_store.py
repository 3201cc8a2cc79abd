"""Committed consumer offsets kept in the Raft metadata, so they survive restarts and
every node agrees on them. The group coordinator writes through this adapter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from broker.coordination.commands import (
    CommitOffsets,
    DeleteGroupOffsets,
    DeleteOffsets,
    OffsetEntry,
)
from broker.coordination.errors import Refusal
from broker.coordination.raft import MetadataRaft, NotLeaderError, RaftError
from broker.groups.offsets import OffsetAndMetadata, OffsetStoreError, TopicPartition
from broker.protocol.errors import ErrorCode


def _code(name: str) -> ErrorCode:
    return ErrorCode[name] if name in ErrorCode.__members__ else ErrorCode.UNKNOWN_SERVER_ERROR


class RaftOffsetStore:
    def __init__(self, raft: MetadataRaft) -> None:
        self._raft = raft

    async def _propose(self, command: object) -> object:
        try:
            result = await self._raft.propose(command)  # type: ignore[arg-type]
        except NotLeaderError as exc:
            raise OffsetStoreError(str(exc), ErrorCode.NOT_COORDINATOR) from None
        except RaftError as exc:
            raise OffsetStoreError(str(exc), ErrorCode.COORDINATOR_NOT_AVAILABLE) from None
        if isinstance(result, Refusal):
            raise OffsetStoreError(result.message or result.error.value, _code(result.error.value))
        for outcome in getattr(result, "partitions", ()):
            # The handler filters unknown partitions out first; anything refused here
            # fails the commit rather than half-applying it silently.
            if outcome.error is not None:
                raise OffsetStoreError(
                    f"{outcome.topic}-{outcome.partition}: {outcome.error.value}",
                    _code(outcome.error.value),
                )
        return result

    async def commit(self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        entries = [
            OffsetEntry(tp.topic, tp.partition, om.offset, om.leader_epoch, om.metadata)
            for tp, om in offsets.items()
        ]
        await self._propose(CommitOffsets(group, entries))

    async def fetch(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        with self._raft.reading() as state:
            committed = dict(state.committed_offsets(group))
        wanted = None if partitions is None else {(tp.topic, tp.partition) for tp in partitions}
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        for (topic, partition), c in committed.items():
            if wanted is None or (topic, partition) in wanted:
                out[TopicPartition(topic, partition)] = OffsetAndMetadata(
                    c.offset, c.leader_epoch, c.metadata or "", c.commit_ms
                )
        return out

    async def delete(self, group: str, partitions: Iterable[TopicPartition] | None) -> None:
        if partitions is None:
            await self._propose(DeleteGroupOffsets(group))
        else:
            await self._propose(DeleteOffsets(group, [(tp.topic, tp.partition) for tp in partitions]))

    async def groups_with_offsets(self) -> list[str]:
        with self._raft.reading() as state:
            return list(state.groups_with_offsets())
