"""A classic group's membership bookkeeping: no timers and no I/O.

The coordinator decides when things happen; this class keeps members, the generation,
the chosen protocol and the leader consistent with each other.
"""

from __future__ import annotations

from collections import Counter

from broker.groups.member import Member, Protocols
from broker.groups.results import DescribedGroup, DescribedMember, JoinedMember, JoinResult
from broker.groups.state import (
    REBALANCEABLE_STATES,
    VALID_PREVIOUS_STATES,
    GroupState,
    IllegalStateTransition,
)
from broker.groups.subscription import subscribed_topics
from broker.groups.timers import Timers
from broker.protocol.errors import ErrorCode

CONSUMER_PROTOCOL_TYPE = "consumer"


class Group:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        # group.instance.id -> the member id currently holding it
        self.static_members: dict[str, str] = {}
        # KIP-394: ids handed out with MEMBER_ID_REQUIRED, not yet joined with them.
        self.pending_members: set[str] = set()
        # Members of the current generation that have not sent SyncGroup yet.
        self.pending_sync_members: set[str] = set()
        # Set when a member joins during the initial delay, which then extends once more.
        self.new_member_added = False
        self.in_initial_delay = False
        # Union of the members' subscriptions (consumer groups); None when unknown.
        self.subscribed_topics: frozenset[str] | None = None
        self._supported_protocols: Counter[str] = Counter()
        self.timers = Timers()

    # -- state ---------------------------------------------------------------------------

    def transition_to(self, target: GroupState) -> None:
        if self.state not in VALID_PREVIOUS_STATES[target]:
            raise IllegalStateTransition(
                f"group {self.group_id!r} cannot go from {self.state.value} to {target.value}"
            )
        self.state = target

    def can_rebalance(self) -> bool:
        return self.state in REBALANCEABLE_STATES

    # -- members -------------------------------------------------------------------------

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self._supported_protocols.update(member.protocol_names())
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.discard(member.member_id)

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        self._supported_protocols.subtract(member.protocol_names())
        if (
            member.group_instance_id is not None
            and self.static_members.get(member.group_instance_id) == member_id
        ):
            del self.static_members[member.group_instance_id]
        self.pending_sync_members.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def update_member(
        self,
        member: Member,
        protocols: Protocols,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
    ) -> None:
        self._supported_protocols.subtract(member.protocol_names())
        member.protocols = [(name, bytes(md)) for name, md in protocols]
        self._supported_protocols.update(member.protocol_names())
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms

    def replace_static_member(
        self, instance_id: str, old_member_id: str, new_member_id: str
    ) -> Member:
        """Give ``instance_id``'s membership to a new member id: the static member
        restarted and the old id must be fenced."""
        member = self.members.pop(old_member_id)
        member.member_id = new_member_id
        self.members[new_member_id] = member
        self.static_members[instance_id] = new_member_id
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        if old_member_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_member_id)
            self.pending_sync_members.add(new_member_id)
        return member

    def is_static_member_fenced(self, group_instance_id: str | None, member_id: str) -> bool:
        if group_instance_id is None:
            return False
        holder = self.static_members.get(group_instance_id)
        return holder is not None and holder != member_id

    def member_error(self, member_id: str, group_instance_id: str | None) -> int | None:
        """Why ``member_id`` may not act in this group, or None if it may."""
        if self.is_static_member_fenced(group_instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return None

    def has_all_members_joined(self) -> bool:
        return not self.pending_members and all(m.is_awaiting_join for m in self.members.values())

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep the leader if it rejoined, else pick a member that did; False when no
        member rejoined at all."""
        leader = self.members.get(self.leader_id) if self.leader_id is not None else None
        if leader is not None and leader.is_awaiting_join:
            return True
        for member in self.members.values():
            if member.is_awaiting_join:
                self.leader_id = member.member_id
                return True
        return False

    # -- protocols -----------------------------------------------------------------------

    def supports_protocols(self, protocol_type: str, names: list[str]) -> bool:
        if not self.members:
            return protocol_type != "" and bool(names)
        return self.protocol_type == protocol_type and any(
            name in self._candidate_protocols() for name in names
        )

    def _candidate_protocols(self) -> set[str]:
        count = len(self.members)
        return {name for name, n in self._supported_protocols.items() if n == count}

    def select_protocol(self) -> str:
        """The protocol every member supports that most members prefer; ties go to the
        leader's preference."""
        candidates = self._candidate_protocols()
        if not candidates:
            raise ValueError(f"group {self.group_id!r} has no protocol every member supports")
        votes = Counter(member.vote(candidates) for member in self.members.values())
        leader = self.members.get(self.leader_id) if self.leader_id is not None else None
        order = leader.protocol_names() if leader is not None else sorted(candidates)

        def rank(name: str) -> tuple[int, int]:
            position = order.index(name) if name in order else len(order)
            return (-votes[name], position)

        return min(votes, key=rank)

    def init_next_generation(self) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY)
        self.pending_sync_members = set(self.members)

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            member_topics = subscribed_topics(member.metadata_for(self.protocol_name))
            if member_topics is None:
                return None
            topics |= member_topics
        return frozenset(topics)

    def is_subscribed_to_topic(self, topic: str) -> bool:
        # Unknown subscriptions count as subscribed: refusing is the safe answer.
        return self.subscribed_topics is None or topic in self.subscribed_topics

    def generation_result(self, member: Member) -> JoinResult:
        """The JoinGroup answer for ``member`` in the current generation; only the
        leader is sent the members' metadata."""
        is_leader = self.leader_id == member.member_id
        return JoinResult(
            ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader=self.leader_id or "",
            members=self.current_member_metadata() if is_leader else [],
        )

    def current_member_metadata(self) -> list[JoinedMember]:
        protocol = self.protocol_name or ""
        return [
            JoinedMember(m.member_id, m.group_instance_id, m.metadata_for(protocol))
            for m in self.members.values()
        ]

    # -- describe ------------------------------------------------------------------------

    def describe(self, error_code: int) -> DescribedGroup:
        stable = self.state is GroupState.STABLE
        protocol = self.protocol_name or ""
        members = [
            DescribedMember(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata_for(protocol) if stable else b"",
                member_assignment=m.assignment if stable else b"",
            )
            for m in self.members.values()
        ]
        return DescribedGroup(
            group_id=self.group_id,
            error_code=error_code,
            group_state=self.state.value,
            protocol_type=self.protocol_type or "",
            protocol_data=protocol if stable else "",
            members=members,
        )
