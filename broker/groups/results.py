"""What the coordinator answers: plain records carrying Kafka error codes as ints.

Field names follow the response specs, so a handler copies them field by field. A None
protocol type or name is Kafka's null (sent as "" by versions that cannot say null).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.groups.offsets import TopicPartition
from broker.protocol.errors import ErrorCode


@dataclass(slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(slots=True)
class JoinResult:
    error_code: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    # JoinGroup v9+: the leader is told to keep the current assignment (a static leader
    # that rejoined a stable group).
    skip_assignment: bool = False
    # Filled for the leader only.
    members: list[JoinedMember] = field(default_factory=list)


@dataclass(slots=True)
class SyncResult:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True)
class HeartbeatResult:
    error_code: int


@dataclass(slots=True)
class MemberIdentity:
    """One member named in a LeaveGroup request (v3+ may name several)."""

    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class MemberLeaveResult:
    member_id: str
    group_instance_id: str | None
    error_code: int


@dataclass(slots=True)
class LeaveResult:
    error_code: int
    members: list[MemberLeaveResult] = field(default_factory=list)

    @property
    def combined_error_code(self) -> int:
        """The one error LeaveGroup v0-v2 can carry: the group's error, else the first
        member's."""
        if self.error_code != ErrorCode.NONE:
            return self.error_code
        for member in self.members:
            if member.error_code != ErrorCode.NONE:
                return member.error_code
        return ErrorCode.NONE


@dataclass(slots=True)
class CommitResult:
    # Per partition, in the order of the request.
    errors: dict[TopicPartition, int]


@dataclass(slots=True)
class FetchedOffset:
    offset: int = -1
    leader_epoch: int = -1
    metadata: str = ""
    error_code: int = ErrorCode.NONE


@dataclass(slots=True)
class FetchOffsetsResult:
    error_code: int
    # In the order asked for; every committed partition, sorted, when all were asked for.
    partitions: dict[TopicPartition, FetchedOffset] = field(default_factory=dict)


@dataclass(slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    member_metadata: bytes
    member_assignment: bytes


@dataclass(slots=True)
class DescribedGroup:
    group_id: str
    error_code: int
    group_state: str
    protocol_type: str = ""
    # The chosen protocol's name, while the group is Stable.
    protocol_data: str = ""
    members: list[DescribedMember] = field(default_factory=list)


@dataclass(slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    group_state: str
    group_type: str = "classic"


@dataclass(slots=True)
class ListGroupsResult:
    error_code: int
    groups: list[ListedGroup] = field(default_factory=list)


@dataclass(slots=True)
class DeleteOffsetsResult:
    error_code: int
    partitions: dict[TopicPartition, int] = field(default_factory=dict)
