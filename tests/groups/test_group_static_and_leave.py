"""KIP-345 static membership and batched LeaveGroup."""

from __future__ import annotations

import asyncio

import pytest

from broker.groups import ErrorCode, GroupState, MemberIdentity, OffsetAndMetadata, TopicPartition

from .support import Consumer, form_group, run, started, subscription

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


async def static_group(coordinator, *instances: str) -> list[Consumer]:
    consumers = [
        Consumer(coordinator, "g", client_id=f"app-{name}", instance_id=name) for name in instances
    ]
    await form_group(consumers)
    return consumers


def test_static_member_rejoins_under_a_new_id_without_a_rebalance():
    async def scenario() -> None:
        coordinator = await started()
        a, b = await static_group(coordinator, "a", "b")
        follower = b if a.is_leader else a
        leader = a if a.is_leader else b
        old_id, old_assignment = follower.member_id, follower.assignment

        # The follower's process restarts: same instance id, no member id.
        restarted = Consumer(
            coordinator, "g", client_id="app-restarted", instance_id=follower.instance_id
        )
        result = await restarted.join()
        assert result.error_code == ErrorCode.NONE
        assert result.member_id != old_id
        assert result.generation_id == 1
        assert result.leader == leader.member_id
        assert result.members == []
        group = coordinator.group("g")
        assert group is not None and group.state is GroupState.STABLE
        assert (await leader.heartbeat()).error_code == ErrorCode.NONE

        synced = await restarted.sync()
        assert synced.error_code == ErrorCode.NONE
        assert synced.assignment == old_assignment
        described = coordinator.describe(["g"])[0]
        assert {m.client_id for m in described.members} == {leader.client_id, "app-restarted"}
        # The previous incarnation is fenced everywhere.
        assert (await follower.heartbeat()).error_code == ErrorCode.FENCED_INSTANCE_ID
        assert (await follower.sync()).error_code == ErrorCode.FENCED_INSTANCE_ID

    run(scenario())


def test_static_leader_rejoin_is_told_to_skip_the_assignment():
    async def scenario() -> None:
        coordinator = await started()
        consumers = await static_group(coordinator, "a", "b")
        leader = next(c for c in consumers if c.is_leader)
        restarted = Consumer(coordinator, "g", instance_id=leader.instance_id)
        result = await restarted.join()
        assert result.error_code == ErrorCode.NONE
        assert result.leader == result.member_id
        assert result.skip_assignment is True
        assert len(result.members) == 2
        assert coordinator.group("g").state is GroupState.STABLE  # type: ignore[union-attr]

    run(scenario())


def test_static_leader_rejoin_from_an_old_client_names_the_previous_leader():
    async def scenario() -> None:
        coordinator = await started()
        consumers = await static_group(coordinator, "a", "b")
        leader = next(c for c in consumers if c.is_leader)
        result = await coordinator.join(
            "g",
            "",
            protocol_type="consumer",
            protocols=leader.protocols,
            session_timeout_ms=2000,
            group_instance_id=leader.instance_id,
            supports_skip_assignment=False,
        )
        assert result.error_code == ErrorCode.NONE
        assert result.leader == leader.member_id != result.member_id
        assert result.skip_assignment is False
        assert result.members == []

    run(scenario())


def test_static_member_rejoining_with_changed_protocols_triggers_a_rebalance():
    async def scenario() -> None:
        coordinator = await started()
        a, b = await static_group(coordinator, "a", "b")
        restarted = Consumer(
            coordinator,
            "g",
            instance_id=b.instance_id,
            protocols=[("range", subscription("topic", "another"))],
        )
        pending = asyncio.ensure_future(restarted.join())
        await asyncio.sleep(0.05)
        assert not pending.done()
        assert (await a.heartbeat()).error_code == ErrorCode.REBALANCE_IN_PROGRESS
        results = await asyncio.gather(pending, a.join())
        assert {r.generation_id for r in results} == {2}

    run(scenario())


def test_static_member_missing_a_rebalance_stays_listed_then_goes_for_not_syncing():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(
                coordinator,
                "g",
                instance_id=name,
                session_timeout_ms=1000,
                rebalance_timeout_ms=100,
            )
            for name in ("a", "b")
        ]
        await form_group(consumers)
        leader = next(c for c in consumers if c.is_leader)
        absent = next(c for c in consumers if not c.is_leader)
        result = await leader.join()
        # The rebalance timed out without the absent static member, which stays listed so
        # a quick restart could pick its assignment up again.
        assert result.generation_id == 2
        assert {m.member_id for m in result.members} == {leader.member_id, absent.member_id}
        await leader.sync()
        loop = asyncio.get_running_loop()
        synced_at = loop.time()
        while (await leader.heartbeat()).error_code != ErrorCode.REBALANCE_IN_PROGRESS:
            await asyncio.sleep(0.02)
            assert loop.time() - synced_at < 0.8, "the absent member was never dropped"
        group = coordinator.group("g")
        assert group is not None and absent.member_id not in group.members
        assert absent.instance_id not in group.static_members

    run(scenario())


def test_static_member_that_stops_heartbeating_is_expired():
    async def scenario() -> None:
        coordinator = await started()
        only = Consumer(coordinator, "g", instance_id="a", session_timeout_ms=100)
        await only.join_and_sync()
        await asyncio.sleep(0.3)
        group = coordinator.group("g")
        assert group is not None and group.state is GroupState.EMPTY
        assert group.static_members == {}

    run(scenario())


def test_fenced_instance_id_is_refused_for_join_heartbeat_commit_and_leave():
    async def scenario() -> None:
        coordinator = await started()
        a, _b = await static_group(coordinator, "a", "b")
        # Another process claims instance "b" with a member id that is not b's.
        impostor = Consumer(
            coordinator, "g", instance_id="b", member_id=a.member_id, generation_id=1
        )
        assert (await impostor.join()).error_code == ErrorCode.FENCED_INSTANCE_ID
        assert (await impostor.heartbeat()).error_code == ErrorCode.FENCED_INSTANCE_ID
        commit = await coordinator.commit_offsets(
            "g",
            {TopicPartition("topic", 0): OffsetAndMetadata(5)},
            member_id=a.member_id,
            generation_id=1,
            group_instance_id="b",
        )
        assert set(commit.errors.values()) == {ErrorCode.FENCED_INSTANCE_ID}
        left = await coordinator.leave("g", [MemberIdentity(a.member_id, "b")])
        assert [m.error_code for m in left.members] == [ErrorCode.FENCED_INSTANCE_ID]
        assert coordinator.group("g").state is GroupState.STABLE  # type: ignore[union-attr]

    run(scenario())


def test_batched_leave_reports_each_member_and_rebalances_the_rest():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", client_id="dyn0"),
            Consumer(coordinator, "g", client_id="dyn1"),
            Consumer(coordinator, "g", client_id="static", instance_id="s"),
            Consumer(coordinator, "g", client_id="stays"),
        ]
        await form_group(consumers)
        dyn0, dyn1, static, stays = consumers
        result = await coordinator.leave(
            "g",
            [
                MemberIdentity(dyn0.member_id),
                MemberIdentity("", "s", reason="operator removed it"),
                MemberIdentity("nobody"),
                MemberIdentity("", "unknown-instance"),
                MemberIdentity(dyn1.member_id, "s"),
            ],
        )
        assert result.error_code == ErrorCode.NONE
        assert [(m.member_id, m.group_instance_id, m.error_code) for m in result.members] == [
            (dyn0.member_id, None, ErrorCode.NONE),
            ("", "s", ErrorCode.NONE),
            ("nobody", None, ErrorCode.UNKNOWN_MEMBER_ID),
            ("", "unknown-instance", ErrorCode.UNKNOWN_MEMBER_ID),
            # Instance "s" is gone by now, so dyn1 is not fenced by it and leaves too.
            (dyn1.member_id, "s", ErrorCode.NONE),
        ]
        assert result.combined_error_code == ErrorCode.UNKNOWN_MEMBER_ID
        group = coordinator.group("g")
        assert group is not None
        assert set(group.members) == {stays.member_id}
        assert group.state is GroupState.PREPARING_REBALANCE
        assert (await stays.heartbeat()).error_code == ErrorCode.REBALANCE_IN_PROGRESS
        rejoined = await stays.join()
        assert rejoined.generation_id == 2 and len(rejoined.members) == 1
        assert static.instance_id not in group.static_members

    run(scenario())


def test_leave_of_an_unknown_group_reports_every_member_unknown():
    async def scenario() -> None:
        coordinator = await started()
        result = await coordinator.leave("nope", [MemberIdentity("m1"), MemberIdentity("m2")])
        assert result.error_code == ErrorCode.NONE
        assert [m.error_code for m in result.members] == [ErrorCode.UNKNOWN_MEMBER_ID] * 2
        assert result.combined_error_code == ErrorCode.UNKNOWN_MEMBER_ID

    run(scenario())


def test_last_member_leaving_empties_the_group_and_a_parked_join_learns_of_its_removal():
    async def scenario() -> None:
        coordinator = await started(initial_rebalance_delay_ms=300)
        waiting = Consumer(coordinator, "g")
        pending = asyncio.ensure_future(waiting.join())
        while not waiting.member_id or waiting.member_id not in coordinator.group("g").members:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        left = await coordinator.leave("g", [MemberIdentity(waiting.member_id)])
        assert left.combined_error_code == ErrorCode.NONE
        assert (await pending).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        # The initial delay still runs out; the generation completes with nobody.
        await asyncio.sleep(0.4)
        group = coordinator.group("g")
        assert group is not None and group.state is GroupState.EMPTY and group.generation_id == 1

    run(scenario())


def test_pending_member_can_leave_before_completing_its_join():
    async def scenario() -> None:
        coordinator = await started()
        first = await coordinator.join(
            "g", "", protocol_type="consumer", protocols=[("range", b"")], session_timeout_ms=1000
        )
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        left = await coordinator.leave("g", [MemberIdentity(first.member_id)])
        assert left.combined_error_code == ErrorCode.NONE
        assert not coordinator.group("g").pending_members  # type: ignore[union-attr]

    run(scenario())


def test_a_full_group_still_takes_back_its_restarted_static_member():
    async def scenario() -> None:
        coordinator = await started(max_group_size=2)
        _a, b = await static_group(coordinator, "a", "b")
        restarted = Consumer(coordinator, "g", instance_id=b.instance_id)
        assert (await restarted.join()).error_code == ErrorCode.NONE
        newcomer = Consumer(coordinator, "g", instance_id="c")
        assert (await newcomer.join()).error_code == ErrorCode.GROUP_MAX_SIZE_REACHED

    run(scenario())
