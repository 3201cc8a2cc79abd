"""DescribeGroups, ListGroups, DeleteGroups and OffsetDelete."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from broker.groups.directory import GroupDirectory
from broker.groups.group import CONSUMER_PROTOCOL_TYPE
from broker.groups.offsets import OffsetStore, OffsetStoreError, TopicPartition
from broker.groups.rebalance import Rebalancer
from broker.groups.results import (
    DeleteOffsetsResult,
    DescribedGroup,
    ListedGroup,
    ListGroupsResult,
)
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode

CLASSIC_GROUP_TYPE = "classic"


class AdminOps:
    def __init__(
        self, directory: GroupDirectory, rebalancer: Rebalancer, store: OffsetStore
    ) -> None:
        self._directory = directory
        self._rebalancer = rebalancer
        self._store = store

    def describe(self, group_ids: Iterable[str]) -> list[DescribedGroup]:
        """DescribeGroups. An unknown group is described as Dead with no error, as Kafka
        does; member metadata and assignments are filled only while Stable."""
        described = []
        for group_id in group_ids:
            error = self._directory.status_error(group_id, require_group_id=False)
            group = self._directory.get(group_id)
            if error is not None:
                described.append(DescribedGroup(group_id, error, ""))
            elif group is None:
                described.append(DescribedGroup(group_id, ErrorCode.NONE, GroupState.DEAD.value))
            else:
                described.append(group.describe(ErrorCode.NONE))
        return described

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> ListGroupsResult:
        """ListGroups. ``states_filter`` (v4+) names states and ``types_filter`` (v5+)
        group types, in any case; an empty filter admits everything. A filter naming no
        known state or type matches nothing. Every group here is a "classic" group."""
        error = self._directory.status_error("", require_group_id=False)
        if error is not None:
            return ListGroupsResult(error)
        types = {t.casefold() for t in types_filter}
        if types and CLASSIC_GROUP_TYPE not in types:
            return ListGroupsResult(ErrorCode.NONE)
        names = list(states_filter)
        wanted = {state for state in (GroupState.parse(n) for n in names) if state is not None}
        listed = [
            ListedGroup(g.group_id, g.protocol_type or "", g.state.value, CLASSIC_GROUP_TYPE)
            for g in self._directory.groups.values()
            if not names or g.state in wanted
        ]
        return ListGroupsResult(ErrorCode.NONE, listed)

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, int]:
        """DeleteGroups: only Empty groups go, with all their committed offsets."""
        results: dict[str, int] = {}
        for group_id in group_ids:
            error = self._directory.status_error(group_id, require_group_id=False)
            if error is not None:
                results[group_id] = error
                continue
            group = self._directory.get(group_id)
            if group is None or group.state is GroupState.DEAD:
                results[group_id] = ErrorCode.GROUP_ID_NOT_FOUND
                continue
            if group.state is not GroupState.EMPTY:
                results[group_id] = ErrorCode.NON_EMPTY_GROUP
                continue
            # Dead before the first await: a JoinGroup arriving meanwhile starts a new group.
            self._directory.drop(group, ErrorCode.COORDINATOR_NOT_AVAILABLE)
            try:
                await self._store.delete(group_id, None)
            except OffsetStoreError as exc:
                # The offsets are still there, so the group must remain visible.
                if self._directory.get(group_id) is None:
                    self._rebalancer.schedule_empty_group_cleanup(self._directory.create(group_id))
                results[group_id] = exc.error_code
                continue
            await self._rebalancer.keeper.forget(group_id)
            results[group_id] = ErrorCode.NONE
        return results

    async def delete_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> DeleteOffsetsResult:
        """OffsetDelete. A consumer group with members keeps the offsets of topics it is
        subscribed to (GROUP_SUBSCRIBED_TO_TOPIC); other partitions' offsets go."""
        error = self._directory.status_error(group_id, require_group_id=False)
        if error is not None:
            return DeleteOffsetsResult(error)
        group = self._directory.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return DeleteOffsetsResult(ErrorCode.GROUP_ID_NOT_FOUND)
        errors: dict[TopicPartition, int] = {}
        if group.state is GroupState.EMPTY:
            eligible = list(partitions)
        elif group.protocol_type == CONSUMER_PROTOCOL_TYPE:
            eligible = []
            for tp in partitions:
                if group.is_subscribed_to_topic(tp.topic):
                    errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    eligible.append(tp)
        else:
            return DeleteOffsetsResult(ErrorCode.NON_EMPTY_GROUP)
        refused: dict[TopicPartition, int] = {}
        if eligible:
            try:
                refused = await self._store.delete(group_id, eligible)
            except OffsetStoreError as exc:
                return DeleteOffsetsResult(exc.error_code)
        for tp in eligible:
            errors[tp] = refused.get(tp, ErrorCode.NONE)
        if group.state is GroupState.EMPTY:
            self._rebalancer.schedule_empty_group_cleanup(group)
        ordered = {tp: errors[tp] for tp in partitions}
        return DeleteOffsetsResult(ErrorCode.NONE, ordered)
