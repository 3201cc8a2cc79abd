"""JoinGroup's cases: a new member, a known member, a pending one (KIP-394) and a
restarted static member (KIP-345)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from broker.groups.config import GroupConfig
from broker.groups.group import Group
from broker.groups.member import Member
from broker.groups.rebalance import Rebalancer, heartbeat_timer
from broker.groups.results import JoinResult, SyncResult
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode


@dataclass(slots=True)
class JoinRequest:
    """A JoinGroup being processed, with the future its caller awaits."""

    waiter: asyncio.Future[JoinResult]
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    require_known_member_id: bool
    supports_skip_assignment: bool

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def answer(self, result: JoinResult) -> None:
        if not self.waiter.done():
            self.waiter.set_result(result)

    def fail(self, error_code: int) -> None:
        self.answer(JoinResult(error_code, member_id=self.member_id))


class Joiner:
    def __init__(self, config: GroupConfig, rebalancer: Rebalancer) -> None:
        self._config = config
        self._rebalancer = rebalancer

    def accepts(self, group: Group, member_id: str, group_instance_id: str | None) -> bool:
        """Whether group.max.size leaves room for this member."""
        limit = self._config.max_group_size
        if member_id == "" and group_instance_id is not None:
            # A restarted static member comes back under its old place, not as a newcomer.
            member_id = group.static_members.get(group_instance_id, "")
        if group.state in (GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.state is GroupState.PREPARING_REBALANCE:
            member = group.members.get(member_id)
            if member is not None and member.is_awaiting_join:
                return True
            return sum(m.is_awaiting_join for m in group.members.values()) < limit
        return member_id in group.members or len(group.members) < limit

    def process(self, group: Group, request: JoinRequest) -> None:
        """Apply ``request`` to ``group``; its waiter is answered now or when the
        rebalance it joins completes."""
        if group.state is GroupState.DEAD:
            request.fail(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        elif not group.supports_protocols(request.protocol_type, request.protocol_names()):
            request.fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        elif request.member_id == "":
            self._join_new_member(group, request)
        else:
            self._join_current_member(group, request)

    def _join_new_member(self, group: Group, request: JoinRequest) -> None:
        request.member_id = f"{request.client_id}-{uuid.uuid4()}"
        if request.group_instance_id is not None:
            old_member_id = group.static_members.get(request.group_instance_id)
            if old_member_id is None:
                self._add_member_and_rebalance(group, request)
            else:
                self._replace_static_member(group, request, old_member_id)
        elif request.require_known_member_id:
            # KIP-394: hand out the id and have the client join again with it, so a client
            # that times out and retries cannot leave nameless members behind.
            group.pending_members.add(request.member_id)
            self._rebalancer.schedule_heartbeat_expiry(
                group, request.member_id, request.session_timeout_ms
            )
            request.fail(ErrorCode.MEMBER_ID_REQUIRED)
        else:
            self._add_member_and_rebalance(group, request)

    def _join_current_member(self, group: Group, request: JoinRequest) -> None:
        member_id = request.member_id
        if member_id in group.pending_members:
            if group.is_static_member_fenced(request.group_instance_id, member_id):
                request.fail(ErrorCode.FENCED_INSTANCE_ID)
            else:
                self._add_member_and_rebalance(group, request)
            return
        error = group.member_error(member_id, request.group_instance_id)
        if error is not None:
            request.fail(error)
            return
        member = group.members[member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, request)
        elif group.state is GroupState.COMPLETING_REBALANCE:
            if member.matches(request.protocols):
                # A retry of a JoinGroup whose answer was lost: answer it again.
                request.answer(group.generation_result(member))
            else:
                self._update_member_and_rebalance(group, member, request)
        elif group.state is GroupState.STABLE:
            # The leader rejoining is how a consumer asks for a new assignment when topic
            # metadata changed without any member's subscription changing.
            if group.leader_id == member_id or not member.matches(request.protocols):
                self._update_member_and_rebalance(group, member, request)
            else:
                request.answer(group.generation_result(member))
        else:
            request.fail(ErrorCode.UNKNOWN_MEMBER_ID)

    def _add_member_and_rebalance(self, group: Group, request: JoinRequest) -> None:
        member = Member(
            member_id=request.member_id,
            group_instance_id=request.group_instance_id,
            client_id=request.client_id,
            client_host=request.client_host,
            session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=request.protocols,
            is_new=True,
            join_waiter=request.waiter,
        )
        if group.state is GroupState.PREPARING_REBALANCE and group.generation_id == 0:
            group.new_member_added = True
        group.add(member)
        self._rebalancer.schedule_heartbeat_expiry(
            group, member.member_id, self._config.new_member_join_timeout_ms
        )
        self._rebalancer.maybe_prepare_rebalance(group)

    def _take_request(self, group: Group, member: Member, request: JoinRequest) -> None:
        group.update_member(
            member, request.protocols, request.rebalance_timeout_ms, request.session_timeout_ms
        )
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.join_waiter = request.waiter

    def _update_member_and_rebalance(
        self, group: Group, member: Member, request: JoinRequest
    ) -> None:
        # A second JoinGroup from the same member supersedes the first, which is answered
        # so that no request stays parked forever.
        member.complete_join(
            JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id)
        )
        self._take_request(group, member, request)
        self._rebalancer.maybe_prepare_rebalance(group)

    def _replace_static_member(
        self, group: Group, request: JoinRequest, old_member_id: str
    ) -> None:
        """KIP-345: a static member came back under a new member id. The old id is
        fenced; the group rebalances only if what the member supports changed."""
        assert request.group_instance_id is not None
        old_leader = group.leader_id
        member = group.members[old_member_id]
        member.complete_join(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old_member_id))
        member.complete_sync(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        protocols_changed = not member.matches(request.protocols)
        group.timers.cancel(heartbeat_timer(old_member_id))
        group.replace_static_member(request.group_instance_id, old_member_id, request.member_id)
        self._take_request(group, member, request)
        self._rebalancer.schedule_heartbeat_expiry(
            group, member.member_id, member.session_timeout_ms
        )

        if group.state is GroupState.STABLE:
            if protocols_changed or group.select_protocol() != group.protocol_name:
                self._rebalancer.maybe_prepare_rebalance(group)
                return
            result = group.generation_result(member)
            # The next coordinator must know the new member id, or it would refuse it.
            self._rebalancer.store_soon(group)
            if group.leader_id == member.member_id and request.supports_skip_assignment:
                result.skip_assignment = True
            else:
                # Naming the old leader id keeps a restarted leader that cannot skip the
                # assignment from computing one a Stable group would never distribute.
                result.members = []
                result.leader = old_leader or ""
            member.complete_join(result)
        elif group.state is GroupState.COMPLETING_REBALANCE:
            # The leader may be assigning to the old member id: start over.
            self._rebalancer.prepare_rebalance(group)
        # PreparingRebalance: the member simply waits with the others.
