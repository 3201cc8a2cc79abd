"""The classic consumer-group coordinator and its committed-offset interface.

Handlers build a :class:`GroupCoordinator` on an :class:`OffsetStore` (the Raft metadata
in a broker, :class:`InMemoryOffsetStore` in tests), ``await start()`` it, and call one
coroutine per group API with values decoded from the request.
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
