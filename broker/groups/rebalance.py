"""When a group rebalances, and what happens to members that time out.

Everything here runs either inside a request (a join, a leave) or from a group's timers:
the join timer (initial delay, then the rebalance timeout), the sync timer (members that
never send SyncGroup), one heartbeat timer per member (its session) and the cleanup
timer of an Empty group.
"""

from __future__ import annotations

import logging

from broker.groups.config import GroupConfig
from broker.groups.directory import GroupDirectory
from broker.groups.group import Group
from broker.groups.member import Member
from broker.groups.membership import MembershipKeeper, to_record
from broker.groups.offsets import OffsetStore, OffsetStoreError
from broker.groups.results import JoinResult, SyncResult
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

JOIN_TIMER = "join"
SYNC_TIMER = "sync"
CLEANUP_TIMER = "cleanup"


def heartbeat_timer(member_id: str) -> tuple[str, str]:
    return ("heartbeat", member_id)


class Rebalancer:
    def __init__(self, config: GroupConfig, directory: GroupDirectory, store: OffsetStore,
                 keeper: MembershipKeeper) -> None:
        self._config = config
        self._directory = directory
        self._store = store
        self.keeper = keeper

    # -- starting a rebalance ------------------------------------------------------------

    def maybe_prepare_rebalance(self, group: Group) -> None:
        if group.can_rebalance():
            self.prepare_rebalance(group)

    def prepare_rebalance(self, group: Group) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self.propagate_assignment_error(group, ErrorCode.REBALANCE_IN_PROGRESS)
        group.timers.cancel(SYNC_TIMER)
        if group.state is GroupState.EMPTY:
            delay = self._config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            group.in_initial_delay = True
            group.new_member_added = False
            group.timers.schedule(
                JOIN_TIMER, delay, lambda: self._on_initial_delay_expired(group, remaining)
            )
        else:
            group.in_initial_delay = False
            group.timers.schedule(
                JOIN_TIMER, group.rebalance_timeout_ms(), lambda: self.complete_join(group)
            )
        group.transition_to(GroupState.PREPARING_REBALANCE)
        log.info(
            "group %s preparing to rebalance (generation %d)", group.group_id, group.generation_id
        )
        self.try_complete_join(group)

    def _on_initial_delay_expired(self, group: Group, remaining_ms: int) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.new_member_added and remaining_ms > 0:
            # Someone joined during the delay: more may be on their way, wait once more.
            group.new_member_added = False
            delay = min(self._config.initial_rebalance_delay_ms, remaining_ms)
            remaining = max(remaining_ms - self._config.initial_rebalance_delay_ms, 0)
            group.timers.schedule(
                JOIN_TIMER, delay, lambda: self._on_initial_delay_expired(group, remaining)
            )
            return
        group.in_initial_delay = False
        self.complete_join(group)

    # -- forming a generation ------------------------------------------------------------

    def try_complete_join(self, group: Group) -> None:
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and not group.in_initial_delay
            and group.has_all_members_joined()
        ):
            self.complete_join(group)

    def complete_join(self, group: Group) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        group.timers.cancel(JOIN_TIMER)
        # Dynamic members that did not rejoin in time are gone; static ones stay until
        # their session times out, so a restarting instance keeps its place.
        for member in list(group.members.values()):
            if not member.is_awaiting_join and not member.is_static:
                group.timers.cancel(heartbeat_timer(member.member_id))
                member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
                group.remove(member.member_id)
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Only static members that have not rejoined remain: wait for them, or for
            # their sessions to run out.
            group.timers.schedule(
                JOIN_TIMER, group.rebalance_timeout_ms(), lambda: self.complete_join(group)
            )
            return
        group.init_next_generation()
        log.info(
            "group %s generation %d: %s with %d members",
            group.group_id,
            group.generation_id,
            group.state.value,
            len(group.members),
        )
        if not group.members:  # the new generation is Empty
            self.schedule_empty_group_cleanup(group)
            # The next coordinator must not resume the members that left.
            self.store_soon(group)
            return
        for member in group.members.values():
            member.complete_join(group.generation_result(member))
            member.is_new = False
            self.schedule_heartbeat_expiry(group, member.member_id, member.session_timeout_ms)
        group.timers.schedule(
            SYNC_TIMER, group.rebalance_timeout_ms(), lambda: self._on_sync_expired(group)
        )

    def store_soon(self, group: Group) -> None:
        """Store the group's membership as it is now, in the background."""
        self._directory.spawn(self.keeper.write(to_record(group)), finish_on_close=True)

    # -- the assignment ------------------------------------------------------------------

    def sync_received(self, group: Group, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.pending_sync_members:
            group.timers.cancel(SYNC_TIMER)

    def _on_sync_expired(self, group: Group) -> None:
        """Members of the generation that never sent SyncGroup are dropped; the others
        must rebalance without them."""
        if group.state not in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        if not group.pending_sync_members:
            return
        for member_id in list(group.pending_sync_members):
            group.timers.cancel(heartbeat_timer(member_id))
            member = group.remove(member_id)
            if member is not None:
                member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self.prepare_rebalance(group)

    def propagate_assignment(self, group: Group) -> None:
        for member in group.members.values():
            if member.is_awaiting_sync:
                member.complete_sync(
                    SyncResult(
                        ErrorCode.NONE, group.protocol_type, group.protocol_name, member.assignment
                    )
                )
                self.schedule_heartbeat_expiry(group, member.member_id, member.session_timeout_ms)

    def propagate_assignment_error(self, group: Group, error_code: int) -> None:
        for member in group.members.values():
            member.assignment = b""
            if member.is_awaiting_sync:
                member.complete_sync(SyncResult(error_code))
                self.schedule_heartbeat_expiry(group, member.member_id, member.session_timeout_ms)

    # -- sessions ------------------------------------------------------------------------

    def schedule_heartbeat_expiry(self, group: Group, member_id: str, timeout_ms: int) -> None:
        group.timers.schedule(
            heartbeat_timer(member_id),
            timeout_ms,
            lambda: self._on_heartbeat_expired(group, member_id),
        )

    def _on_heartbeat_expired(self, group: Group, member_id: str) -> None:
        if group.state is GroupState.DEAD:
            return
        if member_id in group.pending_members:
            self.remove_pending_member(group, member_id)
            return
        member = group.members.get(member_id)
        if member is None:
            return
        if not member.is_new and (member.is_awaiting_join or member.is_awaiting_sync):
            # A member parked in JoinGroup or SyncGroup cannot heartbeat; the rebalance
            # and sync timeouts bound how long it may wait instead.
            return
        log.info("group %s: member %s session expired", group.group_id, member_id)
        self.remove_member(group, member)

    # -- members leaving -----------------------------------------------------------------

    def remove_pending_member(self, group: Group, member_id: str) -> None:
        group.pending_members.discard(member_id)
        group.timers.cancel(heartbeat_timer(member_id))
        self.try_complete_join(group)
        if group.state is GroupState.EMPTY and not group.members and not group.pending_members:
            self.schedule_empty_group_cleanup(group)

    def remove_member(self, group: Group, member: Member) -> None:
        # A parked JoinGroup learns its member is gone; the client joins again if alive.
        member.complete_join(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))
        member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        group.timers.cancel(heartbeat_timer(member.member_id))
        group.remove(member.member_id)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self.maybe_prepare_rebalance(group)
        elif group.state is GroupState.PREPARING_REBALANCE:
            self.try_complete_join(group)

    # -- empty groups --------------------------------------------------------------------

    def schedule_empty_group_cleanup(self, group: Group) -> None:
        group.timers.schedule(
            CLEANUP_TIMER,
            self._config.empty_group_retention_ms,
            lambda: self._directory.spawn(self._forget_if_unused(group)),
        )

    async def _forget_if_unused(self, group: Group) -> None:
        """Drop an Empty group that has no committed offsets, so groups of consumers that
        came and went without committing do not pile up (Kafka's periodic cleanup). An
        Empty group is checked again every retention period until it is used or goes."""
        if not self._is_unused(group):
            return
        try:
            committed = await self._store.fetch(group.group_id, None)
        except OffsetStoreError:
            self.schedule_empty_group_cleanup(group)
            return
        if not self._is_unused(group):
            return
        if committed or self._directory.has_pending_commits(group.group_id):
            # Look again later: the offsets may expire or be deleted meanwhile.
            self.schedule_empty_group_cleanup(group)
            return
        self._directory.drop(group, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        await self.keeper.forget(group.group_id)

    def _is_unused(self, group: Group) -> bool:
        return (
            group.state is GroupState.EMPTY
            and not group.members
            and not group.pending_members
            and self._directory.get(group.group_id) is group
        )
