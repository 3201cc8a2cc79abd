"""OffsetCommit and OffsetFetch: who may commit, and what a fetch answers."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from broker.groups.config import GroupConfig
from broker.groups.directory import GroupDirectory
from broker.groups.offsets import OffsetAndMetadata, OffsetStore, OffsetStoreError, TopicPartition
from broker.groups.rebalance import Rebalancer
from broker.groups.results import CommitResult, FetchedOffset, FetchOffsetsResult
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode


class OffsetOps:
    def __init__(
        self,
        config: GroupConfig,
        directory: GroupDirectory,
        rebalancer: Rebalancer,
        store: OffsetStore,
        clock_ms: Callable[[], int],
    ) -> None:
        self._config = config
        self._directory = directory
        self._rebalancer = rebalancer
        self._store = store
        self._clock_ms = clock_ms

    async def commit_offsets(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        *,
        member_id: str = "",
        generation_id: int = -1,
        group_instance_id: str | None = None,
        unknown_group_is_not_found: bool = False,
    ) -> CommitResult:
        """OffsetCommit. Generation -1 with no member is a "simple" commit by a client
        that manages its own partitions, accepted only while the group has no members.
        A null metadata string is passed as ""; commit_timestamp_ms -1 is stamped now.
        A generation of a group this coordinator does not know is ILLEGAL_GENERATION, or
        GROUP_ID_NOT_FOUND with ``unknown_group_is_not_found`` (OffsetCommit v9+)."""
        error = self._commit_error(
            group_id, member_id, generation_id, group_instance_id, unknown_group_is_not_found
        )
        if error is not None:
            return CommitResult({tp: error for tp in offsets})
        return await self._store_offsets(group_id, offsets)

    def _commit_error(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None,
        unknown_group_is_not_found: bool,
    ) -> int | None:
        error = self._directory.status_error(group_id, require_group_id=False)
        if error is not None:
            return error
        group = self._directory.get(group_id)
        if group is None:
            if generation_id >= 0:
                # A generation this coordinator never formed.
                if unknown_group_is_not_found:
                    return ErrorCode.GROUP_ID_NOT_FOUND
                return ErrorCode.ILLEGAL_GENERATION
            # Kept while it has offsets; checked like any other Empty group.
            self._rebalancer.schedule_empty_group_cleanup(self._directory.create(group_id))
            return None
        if group.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.state is GroupState.EMPTY:
            return None
        error = group.member_error(member_id, group_instance_id)
        if error is not None:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state is GroupState.COMPLETING_REBALANCE:
            # The member has its new generation but not yet its assignment.
            return ErrorCode.REBALANCE_IN_PROGRESS
        # Commits stay allowed while preparing a rebalance: the member learns of the
        # rebalance from its next heartbeat and may first commit what it has processed.
        member = group.members[member_id]
        self._rebalancer.schedule_heartbeat_expiry(group, member_id, member.session_timeout_ms)
        return None

    async def _store_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> CommitResult:
        now = self._clock_ms()
        limit = self._config.offset_metadata_max_bytes
        errors: dict[TopicPartition, int] = {}
        valid: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, committed in offsets.items():
            if len(committed.metadata.encode("utf-8")) > limit:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            if committed.commit_timestamp_ms < 0:
                committed = dataclasses.replace(committed, commit_timestamp_ms=now)
            valid[tp] = committed
            errors[tp] = ErrorCode.NONE
        if valid:
            pending = self._directory.pending_commits.setdefault(group_id, Counter())
            pending.update(valid.keys())
            try:
                errors.update(await self._store.commit(group_id, valid))
            except OffsetStoreError as exc:
                for tp in valid:
                    errors[tp] = exc.error_code
            finally:
                pending.subtract(valid.keys())
                for tp in valid:
                    if pending[tp] <= 0:
                        del pending[tp]
                if not pending:
                    self._directory.pending_commits.pop(group_id, None)
        return CommitResult(errors)

    async def fetch_offsets(
        self,
        group_id: str,
        partitions: Sequence[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> FetchOffsetsResult:
        """OffsetFetch for one group (v8+ handlers call it once per group). Partitions
        without a commit answer offset -1; None asks for every committed partition. With
        ``require_stable`` (v7+), a partition whose commit is still being written answers
        UNSTABLE_OFFSET_COMMIT so the client retries instead of reading a stale offset."""
        error = self._directory.status_error(group_id, require_group_id=False)
        if error is not None:
            return FetchOffsetsResult(error)
        try:
            stored = await self._store.fetch(group_id, partitions)
        except OffsetStoreError as exc:
            return FetchOffsetsResult(exc.error_code)
        pending = (
            self._directory.pending_commits.get(group_id, Counter())
            if require_stable
            else Counter()
        )
        wanted = sorted(stored) if partitions is None else list(partitions)
        answer: dict[TopicPartition, FetchedOffset] = {}
        for tp in wanted:
            if pending[tp] > 0:
                answer[tp] = FetchedOffset(error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT)
            elif tp in stored:
                committed = stored[tp]
                answer[tp] = FetchedOffset(
                    committed.offset, committed.leader_epoch, committed.metadata
                )
            else:
                answer[tp] = FetchedOffset()
        return FetchOffsetsResult(ErrorCode.NONE, answer)
