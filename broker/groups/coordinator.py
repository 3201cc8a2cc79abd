"""The classic consumer-group coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

Handlers call these coroutines with values decoded from requests and turn the returned
records into responses. A JoinGroup or SyncGroup that must wait for other members parks
a future on its member; every state change happens synchronously between awaits, on the
one event loop, so no locks are needed.

Offsets and group administration live in :mod:`broker.groups.offset_ops` and
:mod:`broker.groups.admin_ops`; this class mixes them in so handlers see one object.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from broker.groups.admin_ops import AdminOps
from broker.groups.config import GroupConfig
from broker.groups.group import Group
from broker.groups.member import Member, Protocols
from broker.groups.offset_ops import OffsetOps
from broker.groups.offsets import OffsetStore, OffsetStoreError, TopicPartition
from broker.groups.results import (
    HeartbeatResult,
    JoinResult,
    LeaveResult,
    MemberIdentity,
    MemberLeaveResult,
    SyncResult,
)
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

_JOIN_TIMER = "join"
_SYNC_TIMER = "sync"
_CLEANUP_TIMER = "cleanup"


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class GroupCoordinator(OffsetOps, AdminOps):
    def __init__(
        self,
        store: OffsetStore,
        config: GroupConfig | None = None,
        *,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._store = store
        self._config = config if config is not None else GroupConfig()
        self._clock_ms = clock_ms
        self._groups: dict[str, Group] = {}
        # In-flight commits per group, so require_stable fetches can tell them apart.
        self._pending_commits: dict[str, Counter[TopicPartition]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._loaded = False
        self._closed = False

    @property
    def config(self) -> GroupConfig:
        return self._config

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Recreate, as Empty groups, every group that has committed offsets."""
        for group_id in await self._store.groups_with_offsets():
            self._groups.setdefault(group_id, Group(group_id))
        self._loaded = True

    async def close(self) -> None:
        """Stop serving: parked requests get NOT_COORDINATOR and timers stop."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        for group in list(self._groups.values()):
            self._retire(group, ErrorCode.NOT_COORDINATOR)
        self._groups.clear()

    def _retire(self, group: Group, error_code: int) -> None:
        group.timers.cancel_all()
        for member in group.members.values():
            member.complete_join(JoinResult(error_code, member_id=member.member_id))
            member.complete_sync(SyncResult(error_code))
        group.transition_to(GroupState.DEAD)

    def _status_error(self, group_id: str, *, require_group_id: bool) -> int | None:
        if self._closed:
            return ErrorCode.NOT_COORDINATOR
        if not self._loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        if require_group_id and group_id == "":
            return ErrorCode.INVALID_GROUP_ID
        return None

    def group(self, group_id: str) -> Group | None:
        """The live group, for inspection."""
        return self._groups.get(group_id)

    # -- JoinGroup -----------------------------------------------------------------------

    async def join(
        self,
        group_id: str,
        member_id: str,
        *,
        protocol_type: str,
        protocols: Protocols,
        session_timeout_ms: int,
        rebalance_timeout_ms: int = -1,
        group_instance_id: str | None = None,
        client_id: str = "",
        client_host: str = "",
        require_known_member_id: bool = True,
        supports_skip_assignment: bool = True,
        reason: str | None = None,
    ) -> JoinResult:
        """JoinGroup. ``rebalance_timeout_ms`` -1 (v0) means the session timeout;
        ``require_known_member_id`` is True from v4 (KIP-394) and
        ``supports_skip_assignment`` from v9."""
        error = self._status_error(group_id, require_group_id=True)
        if error is not None:
            return JoinResult(error, member_id=member_id)
        if not (
            self._config.min_session_timeout_ms
            <= session_timeout_ms
            <= self._config.max_session_timeout_ms
        ):
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id)
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        protocol_list = [(name, bytes(metadata)) for name, metadata in protocols]

        new_member = member_id == ""
        group = self._groups.get(group_id)
        created = False
        if group is None:
            if not new_member:
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id)
            group = self._groups[group_id] = Group(group_id)
            created = True
        if not self._accept_joining_member(group, member_id, group_instance_id):
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id=member_id)
        if reason:
            log.info("group %s: member %r joins: %s", group_id, member_id, reason)

        waiter: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        request = _JoinRequest(
            waiter=waiter,
            member_id=member_id,
            group_instance_id=group_instance_id,
            client_id=client_id,
            client_host=client_host,
            session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms,
            protocol_type=protocol_type,
            protocols=protocol_list,
        )
        if new_member:
            self._join_new_member(group, request, require_known_member_id, supports_skip_assignment)
        else:
            self._join_current_member(group, request)
        if (
            created
            and group.state is GroupState.EMPTY
            and not group.members
            and not group.pending_members
        ):
            # The join that created the group was refused: do not keep an empty shell.
            self._groups.pop(group_id, None)
        self._try_complete_join(group)
        return await waiter

    def _accept_joining_member(
        self, group: Group, member_id: str, group_instance_id: str | None
    ) -> bool:
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

    def _join_new_member(
        self,
        group: Group,
        request: _JoinRequest,
        require_known_member_id: bool,
        supports_skip_assignment: bool,
    ) -> None:
        if group.state is GroupState.DEAD:
            request.fail(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        if not group.supports_protocols(request.protocol_type, request.protocol_names()):
            request.fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
            return
        request.member_id = f"{request.client_id}-{uuid.uuid4()}"
        if request.group_instance_id is not None:
            old_member_id = group.static_members.get(request.group_instance_id)
            if old_member_id is None:
                self._add_member_and_rebalance(group, request)
            else:
                self._replace_static_member(group, request, old_member_id, supports_skip_assignment)
        elif require_known_member_id:
            # KIP-394: hand out the id and have the client join again with it, so a client
            # that times out and retries cannot leave nameless members behind.
            group.pending_members.add(request.member_id)
            self._schedule_heartbeat_expiry(group, request.member_id, request.session_timeout_ms)
            request.fail(ErrorCode.MEMBER_ID_REQUIRED)
        else:
            self._add_member_and_rebalance(group, request)

    def _join_current_member(self, group: Group, request: _JoinRequest) -> None:
        member_id = request.member_id
        if group.state is GroupState.DEAD:
            request.fail(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        if not group.supports_protocols(request.protocol_type, request.protocol_names()):
            request.fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
            return
        if member_id in group.pending_members:
            if group.is_static_member_fenced(request.group_instance_id, member_id):
                request.fail(ErrorCode.FENCED_INSTANCE_ID)
            else:
                self._add_member_and_rebalance(group, request)
            return
        error = self._validate_member(group, member_id, request.group_instance_id)
        if error is not None:
            request.fail(error)
            return
        member = group.members[member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, request)
        elif group.state is GroupState.COMPLETING_REBALANCE:
            if member.matches(request.protocols):
                # A retry of a JoinGroup whose answer was lost: answer it again.
                request.waiter.set_result(self._generation_result(group, member))
            else:
                self._update_member_and_rebalance(group, member, request)
        elif group.state is GroupState.STABLE:
            # The leader rejoining is how a consumer asks for a new assignment when topic
            # metadata changed without any member's subscription changing.
            if group.leader_id == member_id or not member.matches(request.protocols):
                self._update_member_and_rebalance(group, member, request)
            else:
                request.waiter.set_result(self._generation_result(group, member))
        else:
            request.fail(ErrorCode.UNKNOWN_MEMBER_ID)

    def _generation_result(self, group: Group, member: Member) -> JoinResult:
        is_leader = group.leader_id == member.member_id
        return JoinResult(
            ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            members=group.current_member_metadata() if is_leader else [],
        )

    def _add_member_and_rebalance(self, group: Group, request: _JoinRequest) -> None:
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
        self._schedule_heartbeat_expiry(
            group, member.member_id, self._config.new_member_join_timeout_ms
        )
        self._maybe_prepare_rebalance(group)

    def _update_member_and_rebalance(
        self, group: Group, member: Member, request: _JoinRequest
    ) -> None:
        # A second JoinGroup from the same member supersedes the first, which is answered
        # so that no request stays parked forever.
        member.complete_join(
            JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id)
        )
        group.update_member(
            member, request.protocols, request.rebalance_timeout_ms, request.session_timeout_ms
        )
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.join_waiter = request.waiter
        self._maybe_prepare_rebalance(group)

    def _replace_static_member(
        self,
        group: Group,
        request: _JoinRequest,
        old_member_id: str,
        supports_skip_assignment: bool,
    ) -> None:
        """KIP-345: a static member came back under a new member id. The old id is
        fenced; the group rebalances only if what the member supports changed."""
        old_leader = group.leader_id
        member = group.members[old_member_id]
        member.complete_join(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old_member_id))
        member.complete_sync(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        protocols_changed = not member.matches(request.protocols)
        group.timers.cancel(("heartbeat", old_member_id))
        assert request.group_instance_id is not None
        group.replace_static_member(request.group_instance_id, old_member_id, request.member_id)
        group.update_member(
            member, request.protocols, request.rebalance_timeout_ms, request.session_timeout_ms
        )
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.join_waiter = request.waiter
        self._schedule_heartbeat_expiry(group, member.member_id, member.session_timeout_ms)

        if group.state is GroupState.STABLE:
            if protocols_changed or group.select_protocol() != group.protocol_name:
                self._maybe_prepare_rebalance(group)
                return
            if group.leader_id == member.member_id and supports_skip_assignment:
                result = self._generation_result(group, member)
                result.skip_assignment = True
            else:
                # Naming the old leader id keeps a restarted leader that cannot skip the
                # assignment from computing one a Stable group would never distribute.
                result = self._generation_result(group, member)
                result.members = []
                result.leader = old_leader or ""
            member.complete_join(result)
        elif group.state is GroupState.COMPLETING_REBALANCE:
            # The leader may be assigning to the old member id: start over.
            self._prepare_rebalance(group)
        # PreparingRebalance: the member simply waits with the others.

    # -- rebalance -----------------------------------------------------------------------

    def _maybe_prepare_rebalance(self, group: Group) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group)

    def _prepare_rebalance(self, group: Group) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._propagate_assignment_error(group, ErrorCode.REBALANCE_IN_PROGRESS)
        group.timers.cancel(_SYNC_TIMER)
        if group.state is GroupState.EMPTY:
            delay = self._config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            group.in_initial_delay = True
            group.new_member_added = False
            group.timers.schedule(
                _JOIN_TIMER, delay, lambda: self._on_initial_delay_expired(group, remaining)
            )
        else:
            group.in_initial_delay = False
            group.timers.schedule(
                _JOIN_TIMER, group.rebalance_timeout_ms(), lambda: self._complete_join(group)
            )
        group.transition_to(GroupState.PREPARING_REBALANCE)
        log.info(
            "group %s preparing to rebalance (generation %d)", group.group_id, group.generation_id
        )
        self._try_complete_join(group)

    def _on_initial_delay_expired(self, group: Group, remaining_ms: int) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.new_member_added and remaining_ms > 0:
            # Someone joined during the delay: more may be on their way, wait once more.
            group.new_member_added = False
            delay = min(self._config.initial_rebalance_delay_ms, remaining_ms)
            remaining = max(remaining_ms - self._config.initial_rebalance_delay_ms, 0)
            group.timers.schedule(
                _JOIN_TIMER, delay, lambda: self._on_initial_delay_expired(group, remaining)
            )
            return
        group.in_initial_delay = False
        self._complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and not group.in_initial_delay
            and group.has_all_members_joined()
        ):
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        group.timers.cancel(_JOIN_TIMER)
        # Dynamic members that did not rejoin in time are gone; static ones stay until
        # their session times out, so a restarting instance keeps its place.
        for member in list(group.members.values()):
            if not member.is_awaiting_join and not member.is_static:
                group.timers.cancel(("heartbeat", member.member_id))
                member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
                group.remove(member.member_id)
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Only static members that have not rejoined remain: wait for them, or for
            # their sessions to run out.
            group.timers.schedule(
                _JOIN_TIMER, group.rebalance_timeout_ms(), lambda: self._complete_join(group)
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
        if group.state is GroupState.EMPTY:
            self._schedule_empty_group_cleanup(group)
            return
        for member in group.members.values():
            member.complete_join(self._generation_result(group, member))
            member.is_new = False
            self._schedule_heartbeat_expiry(group, member.member_id, member.session_timeout_ms)
        group.timers.schedule(
            _SYNC_TIMER, group.rebalance_timeout_ms(), lambda: self._on_sync_expired(group)
        )

    def _on_sync_expired(self, group: Group) -> None:
        """Members of the generation that never sent SyncGroup are dropped; the others
        must rebalance without them."""
        if group.state not in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        if not group.pending_sync_members:
            return
        for member_id in list(group.pending_sync_members):
            group.timers.cancel(("heartbeat", member_id))
            member = group.remove(member_id)
            if member is not None:
                member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._prepare_rebalance(group)

    def _propagate_assignment_error(self, group: Group, error_code: int) -> None:
        for member in group.members.values():
            member.assignment = b""
            if member.is_awaiting_sync:
                member.complete_sync(SyncResult(error_code))
                self._schedule_heartbeat_expiry(group, member.member_id, member.session_timeout_ms)

    def _schedule_empty_group_cleanup(self, group: Group) -> None:
        group.timers.schedule(
            _CLEANUP_TIMER,
            self._config.empty_group_retention_ms,
            lambda: self._spawn(self._forget_if_unused(group)),
        )

    async def _forget_if_unused(self, group: Group) -> None:
        """Drop an Empty group that has no committed offsets, so groups of consumers that
        came and went without committing do not pile up (Kafka's periodic cleanup)."""
        if not self._is_unused(group):
            return
        try:
            committed = await self._store.fetch(group.group_id, None)
        except OffsetStoreError:
            self._schedule_empty_group_cleanup(group)
            return
        if committed or not self._is_unused(group) or group.group_id in self._pending_commits:
            return
        if self._groups.get(group.group_id) is group:
            del self._groups[group.group_id]
            self._retire(group, ErrorCode.COORDINATOR_NOT_AVAILABLE)

    def _is_unused(self, group: Group) -> bool:
        return (
            group.state is GroupState.EMPTY
            and not group.members
            and not group.pending_members
            and self._groups.get(group.group_id) is group
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- SyncGroup -----------------------------------------------------------------------

    async def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        *,
        assignments: dict[str, bytes] | None = None,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        """SyncGroup. ``assignments`` (member id -> bytes) is read from the leader only;
        members it leaves out get an empty assignment."""
        error = self._status_error(group_id, require_group_id=True)
        if error is not None:
            return SyncResult(error)
        group = self._groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.state is GroupState.DEAD:
            return SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not None:
            return SyncResult(error)
        if generation_id != group.generation_id:
            return SyncResult(ErrorCode.ILLEGAL_GENERATION)
        if protocol_type is not None and protocol_type != group.protocol_type:
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if protocol_name is not None and protocol_name != group.protocol_name:
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)

        member = group.members[member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        if group.state is GroupState.STABLE:
            self._sync_received(group, member_id)
            self._schedule_heartbeat_expiry(group, member_id, member.session_timeout_ms)
            return SyncResult(
                ErrorCode.NONE, group.protocol_type, group.protocol_name, member.assignment
            )
        if group.state is not GroupState.COMPLETING_REBALANCE:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)

        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_waiter = waiter
        self._sync_received(group, member_id)
        if group.leader_id == member_id:
            given = assignments or {}
            for unknown in given.keys() - group.members.keys():
                log.warning("group %s: leader assigned to unknown member %s", group_id, unknown)
            for each in group.members.values():
                each.assignment = bytes(given.get(each.member_id, b""))
            group.transition_to(GroupState.STABLE)
            for each in group.members.values():
                if each.is_awaiting_sync:
                    each.complete_sync(
                        SyncResult(
                            ErrorCode.NONE,
                            group.protocol_type,
                            group.protocol_name,
                            each.assignment,
                        )
                    )
                    self._schedule_heartbeat_expiry(group, each.member_id, each.session_timeout_ms)
        return await waiter

    def _sync_received(self, group: Group, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.pending_sync_members:
            group.timers.cancel(_SYNC_TIMER)

    # -- Heartbeat -----------------------------------------------------------------------

    async def heartbeat(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        *,
        group_instance_id: str | None = None,
    ) -> HeartbeatResult:
        error = self._status_error(group_id, require_group_id=True)
        if error is not None:
            return HeartbeatResult(error)
        group = self._groups.get(group_id)
        if group is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.state is GroupState.DEAD:
            return HeartbeatResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not None:
            return HeartbeatResult(error)
        if generation_id != group.generation_id:
            return HeartbeatResult(ErrorCode.ILLEGAL_GENERATION)
        if group.state is GroupState.EMPTY:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID)
        member = group.members[member_id]
        self._schedule_heartbeat_expiry(group, member_id, member.session_timeout_ms)
        if group.state is GroupState.PREPARING_REBALANCE:
            # How members learn that they must rejoin.
            return HeartbeatResult(ErrorCode.REBALANCE_IN_PROGRESS)
        return HeartbeatResult(ErrorCode.NONE)

    def _validate_member(
        self, group: Group, member_id: str, group_instance_id: str | None
    ) -> int | None:
        if group.is_static_member_fenced(group_instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return None

    def _schedule_heartbeat_expiry(self, group: Group, member_id: str, timeout_ms: int) -> None:
        group.timers.schedule(
            ("heartbeat", member_id),
            timeout_ms,
            lambda: self._on_heartbeat_expired(group, member_id),
        )

    def _on_heartbeat_expired(self, group: Group, member_id: str) -> None:
        if group.state is GroupState.DEAD:
            return
        if member_id in group.pending_members:
            self._remove_pending_member(group, member_id)
            return
        member = group.members.get(member_id)
        if member is None:
            return
        if not member.is_new and (member.is_awaiting_join or member.is_awaiting_sync):
            # A member parked in JoinGroup or SyncGroup cannot heartbeat; the rebalance
            # and sync timeouts bound how long it may wait instead.
            return
        log.info("group %s: member %s session expired", group.group_id, member_id)
        self._remove_member(group, member)

    # -- LeaveGroup ----------------------------------------------------------------------

    async def leave(self, group_id: str, members: Sequence[MemberIdentity]) -> LeaveResult:
        """LeaveGroup. v0-v2 name one member by id (use
        :attr:`LeaveResult.combined_error_code`); v3+ name several, by member id or, with
        an empty member id, by group.instance.id alone (an administrator's removal)."""
        error = self._status_error(group_id, require_group_id=True)
        if error is not None:
            return LeaveResult(error)
        group = self._groups.get(group_id)
        if group is None:
            return LeaveResult(
                ErrorCode.NONE,
                [
                    MemberLeaveResult(m.member_id, m.group_instance_id, ErrorCode.UNKNOWN_MEMBER_ID)
                    for m in members
                ],
            )
        if group.state is GroupState.DEAD:
            return LeaveResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        results = []
        for identity in members:
            if identity.reason:
                log.info(
                    "group %s: member %r (%s) leaves: %s",
                    group_id,
                    identity.member_id,
                    identity.group_instance_id,
                    identity.reason,
                )
            results.append(
                MemberLeaveResult(
                    identity.member_id, identity.group_instance_id, self._leave_one(group, identity)
                )
            )
        return LeaveResult(ErrorCode.NONE, results)

    def _leave_one(self, group: Group, identity: MemberIdentity) -> int:
        if identity.member_id == "":
            holder = (
                group.static_members.get(identity.group_instance_id)
                if identity.group_instance_id is not None
                else None
            )
            if holder is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            self._remove_member(group, group.members[holder])
            return ErrorCode.NONE
        if identity.member_id in group.pending_members:
            self._remove_pending_member(group, identity.member_id)
            return ErrorCode.NONE
        error = self._validate_member(group, identity.member_id, identity.group_instance_id)
        if error is not None:
            return error
        self._remove_member(group, group.members[identity.member_id])
        return ErrorCode.NONE

    def _remove_pending_member(self, group: Group, member_id: str) -> None:
        group.pending_members.discard(member_id)
        group.timers.cancel(("heartbeat", member_id))
        self._try_complete_join(group)
        if group.state is GroupState.EMPTY and not group.members and not group.pending_members:
            self._schedule_empty_group_cleanup(group)

    def _remove_member(self, group: Group, member: Member) -> None:
        # A parked JoinGroup learns its member is gone; the client joins again if alive.
        member.complete_join(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID))
        member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        group.timers.cancel(("heartbeat", member.member_id))
        group.remove(member.member_id)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(group)
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)


class _JoinRequest:
    """A JoinGroup being processed, with the future its caller awaits."""

    __slots__ = (
        "client_host",
        "client_id",
        "group_instance_id",
        "member_id",
        "protocol_type",
        "protocols",
        "rebalance_timeout_ms",
        "session_timeout_ms",
        "waiter",
    )

    def __init__(
        self,
        *,
        waiter: asyncio.Future[JoinResult],
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
    ) -> None:
        self.waiter = waiter
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def fail(self, error_code: int) -> None:
        self.waiter.set_result(JoinResult(error_code, member_id=self.member_id))
