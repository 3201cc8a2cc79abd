"""A group moving between coordinators that share one store, as nodes share the Raft
metadata: the node that takes a group over resumes its last stored generation (members,
leader, assignments), so members go on heartbeating and committing with no rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from broker.groups import (
    ErrorCode,
    GroupCoordinator,
    InMemoryOffsetStore,
    MemberIdentity,
    OffsetAndMetadata,
    TopicPartition,
)

from .support import Consumer, fast_config, form_group, run, subscription

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

T0 = TopicPartition("topic", 0)


class Ownership:
    """Which of two coordinators coordinates every group, switched by the test."""

    def __init__(self) -> None:
        self.owner = "a"

    def of(self, name: str) -> Callable[[str], bool]:
        return lambda _group_id: self.owner == name


async def pair(store: InMemoryOffsetStore, ownership: Ownership,
               **config: int) -> tuple[GroupCoordinator, GroupCoordinator]:
    a = GroupCoordinator(store, fast_config(**config), owns=ownership.of("a"))
    b = GroupCoordinator(store, fast_config(**config), owns=ownership.of("b"))
    await a.start()
    await b.start()
    return a, b


async def move(ownership: Ownership, to: str, *coordinators: GroupCoordinator) -> None:
    ownership.owner = to
    for c in coordinators:
        await c.reconcile()


def test_a_new_coordinator_resumes_the_generation_and_members_carry_on() -> None:
    async def scenario() -> None:
        store, ownership = InMemoryOffsetStore(), Ownership()
        a, b = await pair(store, ownership)
        consumers = [Consumer(a, "g", client_id=f"c{i}") for i in range(3)]
        await form_group(consumers)
        assignments = {c.member_id: c.assignment for c in consumers}
        leader = consumers[0].last_join.leader if consumers[0].last_join else None

        await move(ownership, "b", a, b)
        # The old coordinator let go (the handlers answer NOT_COORDINATOR for it).
        assert a.group("g") is None
        for c in consumers:
            c.coordinator = b
            assert (await c.heartbeat()).error_code == ErrorCode.NONE
        committed = await b.commit_offsets("g", {T0: OffsetAndMetadata(42)},
                                           member_id=consumers[1].member_id, generation_id=1)
        assert committed.errors == {T0: ErrorCode.NONE}
        group = b.group("g")
        assert group is not None
        assert (group.state.value, group.generation_id, group.leader_id) == ("Stable", 1, leader)
        assert {m.member_id: m.assignment for m in group.members.values()} == assignments
        described = b.describe(["g"])[0]
        assert {m.member_assignment for m in described.members} == set(assignments.values())
        # A member that resends SyncGroup (a retry) gets the same assignment back.
        synced = await consumers[2].sync()
        assert synced.error_code == ErrorCode.NONE and synced.assignment == assignments[consumers[2].member_id]
        await a.close()
        await b.close()

    run(scenario())


def test_a_group_that_emptied_is_resumed_empty() -> None:
    async def scenario() -> None:
        store, ownership = InMemoryOffsetStore(), Ownership()
        a, b = await pair(store, ownership)
        consumer = Consumer(a, "g")
        await form_group([consumer])
        await a.commit_offsets("g", {T0: OffsetAndMetadata(7)}, member_id=consumer.member_id,
                               generation_id=1)
        left = await a.leave("g", [_identity(consumer.member_id)])
        assert left.members[0].error_code == ErrorCode.NONE
        await _settle()
        await move(ownership, "b", a, b)
        group = b.group("g")
        assert group is not None
        assert (group.state.value, group.generation_id, len(group.members)) == ("Empty", 2, 0)
        # Its old member is not resumed.
        consumer.coordinator = b
        assert (await consumer.heartbeat()).error_code in (ErrorCode.UNKNOWN_MEMBER_ID,
                                                            ErrorCode.ILLEGAL_GENERATION)
        await a.close()
        await b.close()

    run(scenario())


def test_a_coordinator_that_lost_the_group_stores_nothing() -> None:
    async def scenario() -> None:
        store, ownership = InMemoryOffsetStore(), Ownership()
        a, b = await pair(store, ownership, min_session_timeout_ms=10)
        consumer = Consumer(a, "g", session_timeout_ms=200)
        await form_group([consumer])
        # `a` loses the group but has not noticed (no reconcile yet): its member's
        # session runs out there, which empties the group in a's memory only.
        ownership.owner = "b"
        await asyncio.sleep(0.5)
        stored = store.stored_group("g")
        assert stored is not None
        assert (stored.generation_id, [m.member_id for m in stored.members]) == (1, [consumer.member_id])
        await a.close()
        await b.close()

    run(scenario())


def test_a_node_that_regains_a_group_resumes_the_newer_generation_stored_meanwhile() -> None:
    async def scenario() -> None:
        store, ownership = InMemoryOffsetStore(), Ownership()
        a, b = await pair(store, ownership)
        first = Consumer(a, "g", client_id="first")
        await form_group([first])
        # b coordinates for a while (a has not reconciled): the member changes its
        # subscription there, which makes generation 2.
        ownership.owner = "b"
        b.take_over("g")  # what the handlers do before serving a request for "g"
        first.coordinator = b
        first.protocols = [("range", subscription("topic", "other"))]
        joined, _ = await first.join_and_sync()
        assert joined.generation_id == 2
        # Back to a, which still holds generation 1 in memory: the request for the
        # group makes it take up generation 2 from the store.
        ownership.owner = "a"
        a.take_over("g")
        group = a.group("g")
        assert group is not None
        assert (group.generation_id, group.subscribed_topics) == (2, frozenset({"topic", "other"}))
        first.coordinator = a
        assert (await first.heartbeat()).error_code == ErrorCode.NONE
        await a.close()
        await b.close()

    run(scenario())


def test_resumed_members_that_never_come_back_time_out_and_the_group_rebalances() -> None:
    async def scenario() -> None:
        store, ownership = InMemoryOffsetStore(), Ownership()
        a, b = await pair(store, ownership, min_session_timeout_ms=10)
        stays = Consumer(a, "g", client_id="stays", session_timeout_ms=2000)
        gone = Consumer(a, "g", client_id="gone", session_timeout_ms=300)
        await form_group([stays, gone])
        await move(ownership, "b", a, b)
        stays.coordinator = b
        seen = []
        deadline = asyncio.get_running_loop().time() + 3
        while asyncio.get_running_loop().time() < deadline:
            seen.append((await stays.heartbeat()).error_code)
            if seen[-1] == ErrorCode.REBALANCE_IN_PROGRESS:
                break
            await asyncio.sleep(0.05)
        # Its session started over on b and ran out there.
        assert seen[0] == ErrorCode.NONE and seen[-1] == ErrorCode.REBALANCE_IN_PROGRESS, seen
        group = b.group("g")
        assert group is not None and gone.member_id not in group.members
        await a.close()
        await b.close()

    run(scenario())


def test_deleting_a_group_forgets_its_stored_membership() -> None:
    async def scenario() -> None:
        store, ownership = InMemoryOffsetStore(), Ownership()
        a, _ = await pair(store, ownership)
        consumer = Consumer(a, "g")
        await form_group([consumer])
        assert store.stored_group("g") is not None
        await a.leave("g", [_identity(consumer.member_id)])
        await _settle()
        assert await a.delete_groups(["g"]) == {"g": ErrorCode.NONE}
        assert store.stored_group("g") is None
        await a.close()

    run(scenario())


def test_an_unused_empty_group_is_forgotten_with_its_stored_membership() -> None:
    async def scenario() -> None:
        store = InMemoryOffsetStore()
        a = GroupCoordinator(store, fast_config(empty_group_retention_ms=100))
        await a.start()
        consumer = Consumer(a, "g")
        await form_group([consumer])
        await a.leave("g", [_identity(consumer.member_id)])
        deadline = asyncio.get_running_loop().time() + 3
        while store.stored_group("g") is not None or a.group("g") is not None:
            assert asyncio.get_running_loop().time() < deadline, store.stored_group("g")
            await asyncio.sleep(0.05)
        await a.close()

    run(scenario())


def _identity(member_id: str) -> MemberIdentity:
    return MemberIdentity(member_id)


async def _settle() -> None:
    # Background store writes run on the loop: let them land.
    for _ in range(5):
        await asyncio.sleep(0)
