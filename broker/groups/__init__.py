"""The classic consumer-group coordinator and its committed-offset interface.

A node builds one :class:`GroupCoordinator` on an :class:`OffsetStore`
(:class:`broker.groups.raft_store.RaftOffsetStore` in a broker, :class:`InMemoryOffsetStore`
in tests), awaits ``start()`` (which
recreates groups that have committed offsets as Empty groups) and ``close()`` on
shutdown. Until ``start()`` returns every call answers COORDINATOR_LOAD_IN_PROGRESS;
after ``close()``, NOT_COORDINATOR.

One call per API; every result carries Kafka error codes as ints:

- JoinGroup: ``await join(group_id, member_id, protocol_type=, protocols=[(name,
  metadata)], session_timeout_ms=, rebalance_timeout_ms=, group_instance_id=,
  client_id=, client_host=, require_known_member_id=(version >= 4),
  supports_skip_assignment=(version >= 9), reason=)`` -> :class:`JoinResult`. v0 has no
  rebalance timeout: pass -1. A None protocol type/name is sent as "" before v7.
- SyncGroup: ``await sync(group_id, generation_id, member_id, assignments={member_id:
  bytes}, group_instance_id=, protocol_type=, protocol_name=)`` -> :class:`SyncResult`.
- Heartbeat: ``await heartbeat(group_id, generation_id, member_id,
  group_instance_id=)`` -> :class:`HeartbeatResult`.
- LeaveGroup: ``await leave(group_id, [MemberIdentity(member_id, group_instance_id,
  reason)])`` -> :class:`LeaveResult`; v0-v2 answer ``combined_error_code``.
- OffsetCommit: ``await commit_offsets(group_id, {TopicPartition: OffsetAndMetadata},
  member_id=, generation_id=, group_instance_id=, unknown_group_is_not_found=(version
  >= 9))`` -> :class:`CommitResult`. v0 is generation -1 and member ""; a null metadata
  string is "".
- OffsetFetch: ``await fetch_offsets(group_id, partitions or None,
  require_stable=)`` -> :class:`FetchOffsetsResult` (v8+: once per group).
- DescribeGroups: ``describe(group_ids)``; ListGroups: ``list_groups(states_filter,
  types_filter)``;
  DeleteGroups: ``await delete_groups(group_ids)`` -> {group_id: error code};
  OffsetDelete: ``await delete_offsets(group_id, partitions)``.

Parked JoinGroup/SyncGroup calls wait on futures; cancelling the awaiting task (the
client went away) is safe and counts as the member not having rejoined.
"""

from broker.groups.config import GroupConfig
from broker.groups.coordinator import GroupCoordinator
from broker.groups.memory_store import InMemoryOffsetStore
from broker.groups.offsets import OffsetAndMetadata, OffsetStore, OffsetStoreError, TopicPartition
from broker.groups.results import (
    CommitResult,
    DeleteOffsetsResult,
    DescribedGroup,
    DescribedMember,
    FetchedOffset,
    FetchOffsetsResult,
    HeartbeatResult,
    JoinedMember,
    JoinResult,
    LeaveResult,
    ListedGroup,
    ListGroupsResult,
    MemberIdentity,
    MemberLeaveResult,
    SyncResult,
)
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode

__all__ = [
    "CommitResult",
    "DeleteOffsetsResult",
    "DescribedGroup",
    "DescribedMember",
    "ErrorCode",
    "FetchOffsetsResult",
    "FetchedOffset",
    "GroupConfig",
    "GroupCoordinator",
    "GroupState",
    "HeartbeatResult",
    "InMemoryOffsetStore",
    "JoinResult",
    "JoinedMember",
    "LeaveResult",
    "ListGroupsResult",
    "ListedGroup",
    "MemberIdentity",
    "MemberLeaveResult",
    "OffsetAndMetadata",
    "OffsetStore",
    "OffsetStoreError",
    "SyncResult",
    "TopicPartition",
]
