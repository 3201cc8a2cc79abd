"""The classic consumer-group coordinator: the one object handlers talk to.

Handlers call these coroutines with values decoded from requests and turn the returned
records into responses. A JoinGroup or SyncGroup that must wait for other members parks
a future on its member; every state change happens synchronously between awaits, on the
one event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from broker.groups.admin_ops import AdminOps
from broker.groups.config import GroupConfig
from broker.groups.directory import GroupDirectory
from broker.groups.group import Group
from broker.groups.joining import Joiner, JoinRequest
from broker.groups.member import Protocols
from broker.groups.membership import MembershipKeeper, from_record
from broker.groups.offset_ops import OffsetOps
from broker.groups.offsets import OffsetAndMetadata, OffsetStore, TopicPartition
from broker.groups.rebalance import Rebalancer
from broker.groups.results import (
    CommitResult,
    DeleteOffsetsResult,
    DescribedGroup,
    FetchOffsetsResult,
    HeartbeatResult,
    JoinResult,
    LeaveResult,
    ListGroupsResult,
    MemberIdentity,
    MemberLeaveResult,
    SyncResult,
)
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

CLOSE_WRITES_WITHIN_S = 2.0


async def _yield_every(n: int, every: int = 500) -> None:
    # Thousands of groups are looked at in turns, so the event loop serves requests
    # between them.
    if n and n % every == 0:
        await asyncio.sleep(0)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _first_of_each_name(protocols: Protocols) -> list[tuple[str, bytes]]:
    # A protocol named twice would be counted twice when finding the protocol every
    # member supports; the member's first entry for a name is its preference.
    seen: dict[str, bytes] = {}
    for name, metadata in protocols:
        seen.setdefault(name, bytes(metadata))
    return list(seen.items())


class GroupCoordinator:
    def __init__(
        self,
        store: OffsetStore,
        config: GroupConfig | None = None,
        *,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        owns: Callable[[str], bool] = lambda _group_id: True,
    ) -> None:
        """``owns(group_id)``: whether this node coordinates the group now. Groups it
        does not own are neither served from memory nor written to the store."""
        self._store = store
        self._owns = owns
        self._config = config if config is not None else GroupConfig()
        self._directory = GroupDirectory()
        self._rebalancer = Rebalancer(self._config, self._directory, store,
                                      MembershipKeeper(store, owns))
        self._joiner = Joiner(self._config, self._rebalancer)
        self._offsets = OffsetOps(self._config, self._directory, self._rebalancer, store, clock_ms)
        self._admin = AdminOps(self._directory, self._rebalancer, store)

    @property
    def config(self) -> GroupConfig:
        return self._config

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Take up the groups this node coordinates: see reconcile."""
        await self.reconcile()
        self._directory.loaded = True

    async def reconcile(self) -> None:
        """Serve exactly the groups this node coordinates: let go of the others (their
        parked requests get NOT_COORDINATOR) and take up the stored ones it now owns,
        as their last coordinator stored them. A group with committed offsets alone
        comes back Empty. Run at start and whenever the set of live nodes changes."""
        if self._directory.closed:
            return
        for n, (group_id, group) in enumerate(list(self._directory.groups.items())):
            await _yield_every(n)
            if not self._owns(group_id):
                log.info("group %s: coordinated elsewhere now", group_id)
                self._directory.drop(group, ErrorCode.NOT_COORDINATOR)
        for n, group_id in enumerate(self._store.stored_group_ids()):
            await _yield_every(n)
            if self._owns(group_id) and not self._directory.closed:
                self.take_over(group_id)
        for n, group_id in enumerate(await self._store.groups_with_offsets()):
            await _yield_every(n)
            if self._owns(group_id) and self._directory.get(group_id) is None and not self._directory.closed:
                group = self._directory.create(group_id)
                self._rebalancer.schedule_empty_group_cleanup(group)

    def take_over(self, group_id: str) -> None:
        """Before serving a request for a group this node coordinates: if the store
        holds a newer generation than memory (another node coordinated the group
        meanwhile), resume that one."""
        if self._directory.closed:
            return
        stored = self._store.stored_group(group_id)
        if stored is None:
            return
        group = self._directory.get(group_id)
        if group is not None and group.generation_id >= stored.generation_id:
            return
        if group is not None:
            self._directory.drop(group, ErrorCode.NOT_COORDINATOR)
        group = self._directory.adopt(from_record(stored))
        for member in group.members.values():
            # Sessions start over here: the members have not been heard by this node.
            self._rebalancer.schedule_heartbeat_expiry(
                group, member.member_id, member.session_timeout_ms)
        if not group.members:
            self._rebalancer.schedule_empty_group_cleanup(group)
        log.info("group %s: resumed generation %d (%s, %d members) from the metadata",
                 group_id, group.generation_id, group.state.value, len(group.members))

    async def close(self) -> None:
        """Stop serving: parked requests get NOT_COORDINATOR and timers stop. Stores
        of membership already under way get a moment to land, for the next coordinator."""
        await self._directory.finish_writes(CLOSE_WRITES_WITHIN_S)
        self._directory.close()

    def group(self, group_id: str) -> Group | None:
        """The live group, for inspection."""
        return self._directory.get(group_id)

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
        error = self._directory.status_error(group_id, require_group_id=True)
        if error is not None:
            return JoinResult(error, member_id=member_id)
        config = self._config
        if not config.min_session_timeout_ms <= session_timeout_ms <= config.max_session_timeout_ms:
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id)

        group = self._directory.get(group_id)
        created = False
        if group is None:
            if member_id != "":
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id)
            group = self._directory.create(group_id)
            created = True
        if not self._joiner.accepts(group, member_id, group_instance_id):
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id=member_id)
        if reason:
            log.info("group %s: member %r joins: %s", group_id, member_id, reason)

        request = JoinRequest(
            waiter=asyncio.get_running_loop().create_future(),
            member_id=member_id,
            group_instance_id=group_instance_id,
            client_id=client_id,
            client_host=client_host,
            session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=(
                rebalance_timeout_ms if rebalance_timeout_ms >= 0 else session_timeout_ms
            ),
            protocol_type=protocol_type,
            protocols=_first_of_each_name(protocols),
            require_known_member_id=require_known_member_id,
            supports_skip_assignment=supports_skip_assignment,
        )
        self._joiner.process(group, request)
        if (
            created
            and group.state is GroupState.EMPTY
            and not group.members
            and not group.pending_members
        ):
            # The join that created the group was refused: do not keep an empty shell.
            self._directory.drop(group, ErrorCode.NONE)
        self._rebalancer.try_complete_join(group)
        return await request.waiter

    # -- SyncGroup -----------------------------------------------------------------------

    async def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        *,
        assignments: Mapping[str, bytes] | None = None,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        """SyncGroup. ``assignments`` (member id -> bytes) is read from the leader only;
        members it leaves out get an empty assignment."""
        error = self._directory.status_error(group_id, require_group_id=True)
        if error is not None:
            return SyncResult(error)
        group = self._directory.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.state is GroupState.DEAD:
            return SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        error = group.member_error(member_id, group_instance_id)
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
            self._rebalancer.sync_received(group, member_id)
            self._rebalancer.schedule_heartbeat_expiry(group, member_id, member.session_timeout_ms)
            return SyncResult(
                ErrorCode.NONE, group.protocol_type, group.protocol_name, member.assignment
            )
        if group.state is not GroupState.COMPLETING_REBALANCE:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)

        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_waiter = waiter
        self._rebalancer.sync_received(group, member_id)
        if group.leader_id == member_id:
            given = assignments or {}
            for unknown in given.keys() - group.members.keys():
                log.warning("group %s: leader assigned to unknown member %s", group_id, unknown)
            for each in group.members.values():
                each.assignment = bytes(given.get(each.member_id, b""))
            # The generation is stored before anyone gets an assignment, so a
            # coordinator that takes over resumes what the members were told.
            generation = group.generation_id
            await self._rebalancer.keeper.store(group)
            if group.state is GroupState.COMPLETING_REBALANCE and group.generation_id == generation:
                group.transition_to(GroupState.STABLE)
                self._rebalancer.propagate_assignment(group)
        return await waiter

    # -- Heartbeat -----------------------------------------------------------------------

    async def heartbeat(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        *,
        group_instance_id: str | None = None,
    ) -> HeartbeatResult:
        error = self._directory.status_error(group_id, require_group_id=True)
        if error is not None:
            return HeartbeatResult(error)
        group = self._directory.get(group_id)
        if group is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.state is GroupState.DEAD:
            return HeartbeatResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        error = group.member_error(member_id, group_instance_id)
        if error is not None:
            return HeartbeatResult(error)
        if generation_id != group.generation_id:
            return HeartbeatResult(ErrorCode.ILLEGAL_GENERATION)
        if group.state is GroupState.EMPTY:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID)
        member = group.members[member_id]
        self._rebalancer.schedule_heartbeat_expiry(group, member_id, member.session_timeout_ms)
        if group.state is GroupState.PREPARING_REBALANCE:
            # How members learn that they must rejoin.
            return HeartbeatResult(ErrorCode.REBALANCE_IN_PROGRESS)
        return HeartbeatResult(ErrorCode.NONE)

    # -- LeaveGroup ----------------------------------------------------------------------

    async def leave(self, group_id: str, members: Sequence[MemberIdentity]) -> LeaveResult:
        """LeaveGroup. v0-v2 name one member by id (use
        :attr:`LeaveResult.combined_error_code`); v3+ name several, by member id or, with
        an empty member id, by group.instance.id alone (an administrator's removal)."""
        error = self._directory.status_error(group_id, require_group_id=True)
        if error is not None:
            return LeaveResult(error)
        group = self._directory.get(group_id)
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
            code = self._leave_one(group, identity)
            results.append(MemberLeaveResult(identity.member_id, identity.group_instance_id, code))
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
            self._rebalancer.remove_member(group, group.members[holder])
            return ErrorCode.NONE
        if identity.member_id in group.pending_members:
            self._rebalancer.remove_pending_member(group, identity.member_id)
            return ErrorCode.NONE
        error = group.member_error(identity.member_id, identity.group_instance_id)
        if error is not None:
            return error
        self._rebalancer.remove_member(group, group.members[identity.member_id])
        return ErrorCode.NONE

    # -- offsets and administration ------------------------------------------------------

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
        """OffsetCommit; see :meth:`OffsetOps.commit_offsets`."""
        return await self._offsets.commit_offsets(
            group_id,
            offsets,
            member_id=member_id,
            generation_id=generation_id,
            group_instance_id=group_instance_id,
            unknown_group_is_not_found=unknown_group_is_not_found,
        )

    async def fetch_offsets(
        self,
        group_id: str,
        partitions: Sequence[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> FetchOffsetsResult:
        """OffsetFetch; see :meth:`OffsetOps.fetch_offsets`."""
        return await self._offsets.fetch_offsets(
            group_id, partitions, require_stable=require_stable
        )

    def describe(self, group_ids: Iterable[str]) -> list[DescribedGroup]:
        """DescribeGroups; see :meth:`AdminOps.describe`."""
        return self._admin.describe(group_ids)

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> ListGroupsResult:
        """ListGroups; see :meth:`AdminOps.list_groups`."""
        return self._admin.list_groups(states_filter, types_filter)

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, int]:
        """DeleteGroups; see :meth:`AdminOps.delete_groups`."""
        return await self._admin.delete_groups(group_ids)

    async def delete_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> DeleteOffsetsResult:
        """OffsetDelete; see :meth:`AdminOps.delete_offsets`."""
        return await self._admin.delete_offsets(group_id, partitions)
