"""An offset store held in a dict: for tests and for a broker run without metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from broker.coordination.group_records import GroupTable, StoredGroup
from broker.groups.offsets import OffsetAndMetadata, OffsetStoreError, TopicPartition
from broker.protocol.errors import ErrorCode


class InMemoryOffsetStore:
    def __init__(self) -> None:
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        self._groups = GroupTable()

    async def commit(
        self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, int]:
        if offsets:
            self._offsets.setdefault(group, {}).update(offsets)
        return {}

    async def fetch(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        stored = self._offsets.get(group, {})
        if partitions is None:
            return dict(stored)
        return {tp: stored[tp] for tp in partitions if tp in stored}

    async def delete(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, int]:
        if partitions is None:
            self._offsets.pop(group, None)
            return {}
        stored = self._offsets.get(group)
        if stored is None:
            return {}
        for tp in partitions:
            stored.pop(tp, None)
        if not stored:
            del self._offsets[group]
        return {}

    async def groups_with_offsets(self) -> list[str]:
        return sorted(self._offsets)

    def stored_group(self, group_id: str) -> StoredGroup | None:
        return self._groups.get(group_id)

    def stored_group_ids(self) -> list[str]:
        return self._groups.ids()

    async def store_group(self, record: StoredGroup) -> None:
        older = self._groups.store(record)
        if older is not None:
            raise OffsetStoreError(older, ErrorCode.ILLEGAL_GENERATION)

    async def forget_group(self, group_id: str) -> None:
        self._groups.forget(group_id)
