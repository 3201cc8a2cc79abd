"""An offset store held in a dict: for tests and for a broker run without metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from broker.groups.offsets import OffsetAndMetadata, TopicPartition


class InMemoryOffsetStore:
    def __init__(self) -> None:
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}

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
