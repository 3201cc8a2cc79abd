"""A group's membership kept in the store, so the next coordinator resumes it.

The coordinator stores a group when a generation's assignment is complete and when the
group empties (Kafka writes its group metadata at the same two moments). A node that
takes a group over restores the last stored generation: the members keep their ids,
generation and assignments, so their heartbeats and commits go on being accepted, with
no rebalance. Anything after the last store (a rebalance in progress) is lost, and the
members simply rejoin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from broker.coordination.group_records import StoredGroup, StoredMember
from broker.groups.group import Group
from broker.groups.member import Member
from broker.groups.offsets import OffsetStore, OffsetStoreError
from broker.groups.state import GroupState

log = logging.getLogger(__name__)


def to_record(group: Group) -> StoredGroup:
    protocol = group.protocol_name or ""
    return StoredGroup(
        group_id=group.group_id,
        generation_id=group.generation_id,
        protocol_type=group.protocol_type,
        protocol_name=group.protocol_name,
        leader_id=group.leader_id if group.members else None,
        members=tuple(
            StoredMember(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                session_timeout_ms=m.session_timeout_ms,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                subscription=m.metadata_for(protocol),
                assignment=m.assignment,
            )
            for m in group.members.values()
        ),
    )


def from_record(record: StoredGroup) -> Group:
    """The group as its last coordinator stored it: Stable with its members, or Empty.
    Timers are the caller's to start."""
    group = Group(record.group_id)
    group.generation_id = record.generation_id
    group.protocol_type = record.protocol_type
    for stored in record.members:
        group.add(Member(
            member_id=stored.member_id,
            group_instance_id=stored.group_instance_id,
            client_id=stored.client_id,
            client_host=stored.client_host,
            session_timeout_ms=stored.session_timeout_ms,
            rebalance_timeout_ms=stored.rebalance_timeout_ms,
            protocol_type=record.protocol_type or "",
            # Only the chosen protocol's metadata is stored: a member that rejoins sends
            # its whole list again.
            protocols=[(record.protocol_name or "", stored.subscription)],
            assignment=stored.assignment,
        ))
    group.protocol_type = record.protocol_type
    group.protocol_name = record.protocol_name if group.members else None
    group.leader_id = record.leader_id if group.members else None
    group.subscribed_topics = group.compute_subscribed_topics()
    # Restoring is not a transition: the group was in this state at its last store.
    group.state = GroupState.STABLE if group.members else GroupState.EMPTY
    return group


class MembershipKeeper:
    """Writes groups to the store for the coordinator that comes next. A write never
    fails the caller: the group goes on from memory, and only its survival of a
    coordinator change is at stake."""

    def __init__(self, store: OffsetStore, owns: Callable[[str], bool]) -> None:
        self._store = store
        self._owns = owns

    async def store(self, group: Group) -> None:
        await self.write(to_record(group))

    async def write(self, record: StoredGroup) -> None:
        if not self._owns(record.group_id):
            # This node no longer coordinates the group; what it holds is out of date.
            return
        try:
            await self._store.store_group(record)
        except OffsetStoreError as exc:
            log.warning("group %s: generation %d not stored (%s); a new coordinator would "
                        "make its members rejoin", record.group_id, record.generation_id, exc)

    async def forget(self, group_id: str) -> None:
        if not self._owns(group_id):
            return
        try:
            await self._store.forget_group(group_id)
        except OffsetStoreError as exc:
            log.warning("group %s: stored membership not removed (%s)", group_id, exc)
