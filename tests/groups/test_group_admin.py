"""DescribeGroups, ListGroups, DeleteGroups and OffsetDelete."""

from __future__ import annotations

import asyncio

import pytest

from broker.groups import (
    ErrorCode,
    InMemoryOffsetStore,
    MemberIdentity,
    OffsetAndMetadata,
    TopicPartition,
)

from .support import Consumer, form_group, run, started, subscription

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

ORDERS = TopicPartition("orders", 0)
LEGACY = TopicPartition("legacy", 0)


def test_delete_group_is_refused_while_it_has_members_and_removes_offsets_once_empty():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await form_group(consumers)
        await coordinator.commit_offsets(
            "g", {ORDERS: OffsetAndMetadata(9)}, member_id=consumers[0].member_id, generation_id=1
        )
        refused = await coordinator.delete_groups(["g", "missing", ""])
        assert refused == {
            "g": ErrorCode.NON_EMPTY_GROUP,
            "missing": ErrorCode.GROUP_ID_NOT_FOUND,
            "": ErrorCode.GROUP_ID_NOT_FOUND,
        }
        assert (await coordinator.fetch_offsets("g", [ORDERS])).partitions[ORDERS].offset == 9

        left = await coordinator.leave("g", [MemberIdentity(c.member_id) for c in consumers])
        assert left.combined_error_code == ErrorCode.NONE
        assert coordinator.describe(["g"])[0].group_state == "Empty"
        assert await coordinator.delete_groups(["g"]) == {"g": ErrorCode.NONE}
        assert (await coordinator.fetch_offsets("g", [ORDERS])).partitions[ORDERS].offset == -1
        assert [g.group_id for g in coordinator.list_groups().groups] == []
        assert coordinator.describe(["g"])[0].group_state == "Dead"
        assert await coordinator.delete_groups(["g"]) == {"g": ErrorCode.GROUP_ID_NOT_FOUND}
        # Old members are not members of whatever group takes the name next.
        assert (await consumers[0].heartbeat()).error_code == ErrorCode.UNKNOWN_MEMBER_ID

    run(scenario())


def test_offset_delete_is_refused_for_topics_the_group_is_subscribed_to():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", protocols=[("range", subscription("orders"))]),
            Consumer(coordinator, "g", protocols=[("range", subscription("orders", "payments"))]),
        ]
        await form_group(consumers)
        await coordinator.commit_offsets(
            "g",
            {ORDERS: OffsetAndMetadata(1), LEGACY: OffsetAndMetadata(2)},
            member_id=consumers[0].member_id,
            generation_id=1,
        )
        never_committed = TopicPartition("payments", 4)
        result = await coordinator.delete_offsets("g", [ORDERS, LEGACY, never_committed])
        assert result.error_code == ErrorCode.NONE
        assert result.partitions == {
            ORDERS: ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
            LEGACY: ErrorCode.NONE,
            never_committed: ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
        }
        remaining = await coordinator.fetch_offsets("g", None)
        assert list(remaining.partitions) == [ORDERS]

        # Once the group is empty, any offset may go.
        await coordinator.leave("g", [MemberIdentity(c.member_id) for c in consumers])
        emptied = await coordinator.delete_offsets("g", [ORDERS])
        assert emptied.partitions == {ORDERS: ErrorCode.NONE}
        assert (await coordinator.fetch_offsets("g", None)).partitions == {}

        unknown = await coordinator.delete_offsets("nope", [ORDERS])
        assert unknown.error_code == ErrorCode.GROUP_ID_NOT_FOUND

    run(scenario())


def test_offset_delete_treats_unreadable_subscriptions_as_subscribed_to_everything():
    async def scenario() -> None:
        coordinator = await started()
        member = Consumer(coordinator, "g", protocols=[("custom", b"\x00\x00\xff\xff\xff")])
        await member.join_and_sync()
        await coordinator.commit_offsets(
            "g", {LEGACY: OffsetAndMetadata(2)}, member_id=member.member_id, generation_id=1
        )
        result = await coordinator.delete_offsets("g", [LEGACY])
        assert result.partitions == {LEGACY: ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC}

    run(scenario())


def test_offset_delete_of_a_non_consumer_group_with_members_is_refused():
    async def scenario() -> None:
        coordinator = await started()
        worker = Consumer(coordinator, "w", protocol_type="connect", protocols=[("default", b"")])
        await worker.join_and_sync()
        await coordinator.commit_offsets(
            "w", {LEGACY: OffsetAndMetadata(2)}, member_id=worker.member_id, generation_id=1
        )
        result = await coordinator.delete_offsets("w", [LEGACY])
        assert result.error_code == ErrorCode.NON_EMPTY_GROUP
        assert result.partitions == {}

    run(scenario())


def test_describe_and_list_report_each_group_in_its_state():
    async def scenario() -> None:
        coordinator = await started(initial_rebalance_delay_ms=300)
        stable = [
            Consumer(coordinator, "stable", client_id="alpha", protocols=[("range", b"md-a")]),
            Consumer(coordinator, "stable", client_id="beta", protocols=[("range", b"md-b")]),
        ]
        await form_group(stable)
        await coordinator.commit_offsets("idle", {LEGACY: OffsetAndMetadata(1)})
        # Held in the initial rebalance delay while the test looks.
        preparing = asyncio.ensure_future(Consumer(coordinator, "preparing").join())
        await asyncio.sleep(0.02)

        listed = coordinator.list_groups()
        assert listed.error_code == ErrorCode.NONE
        states = {g.group_id: (g.group_state, g.protocol_type) for g in listed.groups}
        assert states == {
            "stable": ("Stable", "consumer"),
            "idle": ("Empty", ""),
            "preparing": ("PreparingRebalance", "consumer"),
        }
        assert {g.group_type for g in listed.groups} == {"classic"}
        only_stable = coordinator.list_groups(["stable"])
        assert [g.group_id for g in only_stable.groups] == ["stable"]
        two_states = coordinator.list_groups(["Empty", "PREPARINGREBALANCE"])
        assert sorted(g.group_id for g in two_states.groups) == ["idle", "preparing"]
        assert coordinator.list_groups(["NoSuchState"]).groups == []
        classic = coordinator.list_groups(types_filter=["Classic"])
        assert sorted(g.group_id for g in classic.groups) == ["idle", "preparing", "stable"]
        assert coordinator.list_groups(types_filter=["consumer"]).groups == []
        stable_classic = coordinator.list_groups(["stable"], ["classic"])
        assert [g.group_id for g in stable_classic.groups] == ["stable"]

        described = {d.group_id: d for d in coordinator.describe(["stable", "preparing", "ghost"])}
        s = described["stable"]
        assert (s.error_code, s.group_state, s.protocol_type, s.protocol_data) == (
            0,
            "Stable",
            "consumer",
            "range",
        )
        by_client = {m.client_id: m for m in s.members}
        assert set(by_client) == {"alpha", "beta"}
        assert by_client["alpha"].member_metadata == b"md-a"
        assert by_client["alpha"].client_host == "/127.0.0.1"
        for consumer in stable:
            member = by_client[consumer.client_id]
            assert member.member_id == consumer.member_id
            assert member.member_assignment == consumer.assignment != b""
        p = described["preparing"]
        assert p.group_state == "PreparingRebalance" and p.protocol_data == ""
        assert [(m.member_metadata, m.member_assignment) for m in p.members] == [(b"", b"")]
        ghost = described["ghost"]
        assert (ghost.error_code, ghost.group_state, ghost.members) == (0, "Dead", [])
        preparing.cancel()

    run(scenario())


def test_describe_shows_completing_rebalance_while_the_leader_assigns():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await asyncio.gather(*(c.join() for c in consumers))
        assert coordinator.describe(["g"])[0].group_state == "CompletingRebalance"
        assert [g.group_state for g in coordinator.list_groups(["completingrebalance"]).groups] == [
            "CompletingRebalance"
        ]

    run(scenario())


def test_empty_groups_without_offsets_are_forgotten_after_the_retention_time():
    async def scenario() -> None:
        coordinator = await started(empty_group_retention_ms=100)
        passing = Consumer(coordinator, "passing")
        committing = Consumer(coordinator, "committing")
        await form_group([passing])
        await form_group([committing])
        await coordinator.commit_offsets(
            "committing",
            {ORDERS: OffsetAndMetadata(3)},
            member_id=committing.member_id,
            generation_id=1,
        )
        for consumer in (passing, committing):
            await coordinator.leave(consumer.group_id, [MemberIdentity(consumer.member_id)])
        # A client that got a member id and never came back leaves nothing behind either.
        abandoned = await coordinator.join(
            "abandoned",
            "",
            protocol_type="consumer",
            protocols=[("range", b"")],
            session_timeout_ms=50,
        )
        assert abandoned.error_code == ErrorCode.MEMBER_ID_REQUIRED
        listed = {g.group_id: g.group_state for g in coordinator.list_groups().groups}
        assert listed == {"passing": "Empty", "committing": "Empty", "abandoned": "Empty"}
        await asyncio.sleep(0.4)
        listed = {g.group_id: g.group_state for g in coordinator.list_groups().groups}
        assert listed == {"committing": "Empty"}
        assert coordinator.describe(["passing"])[0].group_state == "Dead"
        # Deleting its last offsets makes the remaining group forgettable too.
        await coordinator.delete_offsets("committing", [ORDERS])
        await asyncio.sleep(0.3)
        assert coordinator.list_groups().groups == []

    run(scenario())


def test_a_group_reused_before_the_retention_time_is_kept():
    async def scenario() -> None:
        coordinator = await started(empty_group_retention_ms=150)
        first = Consumer(coordinator, "g")
        await form_group([first])
        await coordinator.leave("g", [MemberIdentity(first.member_id)])
        second = Consumer(coordinator, "g")
        await form_group([second])
        await asyncio.sleep(0.3)
        assert [g.group_state for g in coordinator.list_groups().groups] == ["Stable"]
        assert (await second.heartbeat()).error_code == ErrorCode.NONE

    run(scenario())


def test_an_empty_group_is_checked_again_until_its_offsets_are_gone():
    async def scenario() -> None:
        store = InMemoryOffsetStore()
        coordinator = await started(store, empty_group_retention_ms=80)
        await coordinator.commit_offsets("standalone", {ORDERS: OffsetAndMetadata(1)})
        await asyncio.sleep(0.25)
        assert [g.group_id for g in coordinator.list_groups().groups] == ["standalone"]
        # The offsets go some other way (retention, say): the group follows.
        await store.delete("standalone", None)
        await asyncio.sleep(0.25)
        assert coordinator.list_groups().groups == []

    run(scenario())
