"""JoinGroup, SyncGroup, Heartbeat and session expiry of the classic group protocol."""

from __future__ import annotations

import asyncio

import pytest

from broker.groups import ErrorCode, GroupState, JoinResult

from .support import (
    Consumer,
    form_group,
    keep_heartbeating,
    run,
    started,
    subscription,
    sync_all,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def test_three_members_form_one_generation_with_one_leader_and_every_member_gets_its_assignment():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(3)]
        results = await form_group(consumers)

        joins = [j for j, _ in results]
        assert {j.error_code for j in joins} == {ErrorCode.NONE}
        assert {j.generation_id for j in joins} == {1}
        assert len({j.leader for j in joins}) == 1
        assert len({j.member_id for j in joins}) == 3
        leaders = [c for c in consumers if c.is_leader]
        assert len(leaders) == 1
        leader_join = leaders[0].last_join
        assert leader_join is not None
        assert sorted(m.member_id for m in leader_join.members) == sorted(
            c.member_id for c in consumers
        )
        assert all(m.metadata == subscription("topic") for m in leader_join.members)
        assert all(c.last_join.members == [] for c in consumers if not c.is_leader)  # type: ignore[union-attr]
        assert {j.protocol_name for j in joins} == {"range"}
        assert {j.protocol_type for j in joins} == {"consumer"}
        for consumer, (_, synced) in zip(consumers, results, strict=True):
            assert synced.error_code == ErrorCode.NONE
            assert synced.assignment == f"for {consumer.member_id}".encode()
        group = coordinator.group("g")
        assert group is not None and group.state is GroupState.STABLE
        assert all(c.member_id.startswith(f"{c.client_id}-") for c in consumers)

    run(scenario())


def test_followers_sync_waits_for_the_leaders_assignment():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await asyncio.gather(*(c.join() for c in consumers))
        leader = next(c for c in consumers if c.is_leader)
        follower = next(c for c in consumers if not c.is_leader)
        follower_sync = asyncio.ensure_future(follower.sync())
        await asyncio.sleep(0.05)
        assert not follower_sync.done()
        # A leader that leaves a member out of its assignment gives it empty bytes.
        leader_result = await leader.sync({leader.member_id: b"all of it"})
        assert leader_result.assignment == b"all of it"
        follower_result = await follower_sync
        assert follower_result.error_code == ErrorCode.NONE
        assert follower_result.assignment == b""
        assert follower_result.protocol_name == "range"

    run(scenario())


def test_joining_member_triggers_a_rebalance_seen_through_heartbeat():
    async def scenario() -> None:
        coordinator = await started()
        first = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await form_group(first)
        assert [(await c.heartbeat()).error_code for c in first] == [ErrorCode.NONE] * 2

        newcomer = Consumer(coordinator, "g", client_id="late")
        newcomer_join = asyncio.ensure_future(newcomer.join())
        await asyncio.sleep(0.05)
        assert not newcomer_join.done()
        assert coordinator.group("g").state is GroupState.PREPARING_REBALANCE  # type: ignore[union-attr]
        assert [(await c.heartbeat()).error_code for c in first] == [
            ErrorCode.REBALANCE_IN_PROGRESS
        ] * 2

        everyone = [*first, newcomer]
        joins = await asyncio.gather(newcomer_join, *(c.join() for c in first))
        assert {j.generation_id for j in joins} == {2}
        synced = await sync_all(everyone)
        assert all(s.error_code == ErrorCode.NONE for s in synced)
        assert [(await c.heartbeat()).error_code for c in everyone] == [ErrorCode.NONE] * 3

    run(scenario())


def test_member_that_stops_heartbeating_is_expired_after_its_session_timeout_and_the_others_rebalance():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", client_id=f"c{i}", session_timeout_ms=300) for i in range(3)
        ]
        await form_group(consumers)
        silent = consumers[2]
        alive = consumers[:2]
        seen: list[list[int]] = [[], []]
        beats = [
            asyncio.ensure_future(keep_heartbeating(c, 0.05, s))
            for c, s in zip(alive, seen, strict=True)
        ]
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        while ErrorCode.REBALANCE_IN_PROGRESS not in seen[0] + seen[1]:
            await asyncio.sleep(0.02)
            assert loop.time() - started_at < 3, "the silent member was never expired"
        # Not before its session ran out.
        assert loop.time() - started_at >= 0.25
        for beat in beats:
            beat.cancel()
        group = coordinator.group("g")
        assert group is not None and silent.member_id not in group.members

        results = await form_group(alive)
        assert {j.generation_id for j, _ in results} == {2}
        leader_join = next(c.last_join for c in alive if c.is_leader)
        assert leader_join is not None and len(leader_join.members) == 2
        assert (await silent.heartbeat()).error_code == ErrorCode.UNKNOWN_MEMBER_ID

    run(scenario())


def test_last_member_expiring_leaves_the_group_empty():
    async def scenario() -> None:
        coordinator = await started()
        only = Consumer(coordinator, "g", session_timeout_ms=100)
        await only.join_and_sync()
        await asyncio.sleep(0.3)
        group = coordinator.group("g")
        assert group is not None
        assert group.state is GroupState.EMPTY
        assert group.generation_id == 2
        assert group.members == {}

    run(scenario())


def test_member_id_required_then_join_with_the_given_id():
    async def scenario() -> None:
        coordinator = await started()
        first = await coordinator.join(
            "g",
            "",
            protocol_type="consumer",
            protocols=[("range", b"m")],
            session_timeout_ms=1000,
            client_id="app",
        )
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        assert first.member_id.startswith("app-")
        assert first.generation_id == -1
        group = coordinator.group("g")
        assert group is not None and first.member_id in group.pending_members
        second = await coordinator.join(
            "g",
            first.member_id,
            protocol_type="consumer",
            protocols=[("range", b"m")],
            session_timeout_ms=1000,
            client_id="app",
        )
        assert second.error_code == ErrorCode.NONE
        assert second.member_id == first.member_id
        assert second.leader == first.member_id
        assert second.generation_id == 1
        assert not group.pending_members

    run(scenario())


def test_old_clients_join_without_the_member_id_round_trip():
    async def scenario() -> None:
        coordinator = await started()
        result = await Consumer(coordinator, "g").join(require_known_member_id=False)
        assert result.error_code == ErrorCode.NONE
        assert result.generation_id == 1

    run(scenario())


def test_pending_member_that_never_returns_is_dropped_after_its_session_timeout():
    async def scenario() -> None:
        coordinator = await started()
        steady = Consumer(coordinator, "g", client_id="steady")
        await steady.join_and_sync()
        # A client obtains a member id, then vanishes: the group must not wait forever.
        ghost = await coordinator.join(
            "g",
            "",
            protocol_type="consumer",
            protocols=[("range", b"m")],
            session_timeout_ms=150,
            client_id="ghost",
        )
        assert ghost.error_code == ErrorCode.MEMBER_ID_REQUIRED
        group = coordinator.group("g")
        assert group is not None and ghost.member_id in group.pending_members
        # The leader rejoins (forcing a rebalance); it completes once the ghost expires.
        loop = asyncio.get_running_loop()
        before = loop.time()
        rejoined = await steady.join()
        assert rejoined.error_code == ErrorCode.NONE
        assert rejoined.generation_id == 2
        assert loop.time() - before >= 0.1
        assert not group.pending_members

    run(scenario())


def test_unknown_member_ids_are_refused():
    async def scenario() -> None:
        coordinator = await started()
        unknown_group = await coordinator.join(
            "nope",
            "made-up",
            protocol_type="consumer",
            protocols=[("range", b"")],
            session_timeout_ms=1000,
        )
        assert unknown_group.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert coordinator.group("nope") is None
        member = Consumer(coordinator, "g")
        await member.join_and_sync()
        stranger = Consumer(coordinator, "g", member_id="made-up", generation_id=1)
        assert (await stranger.join()).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert (await stranger.sync()).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert (await stranger.heartbeat()).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert (
            await coordinator.heartbeat("nope", 1, "x")
        ).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert (await coordinator.sync("nope", 1, "x")).error_code == ErrorCode.UNKNOWN_MEMBER_ID

    run(scenario())


def test_members_without_a_common_protocol_are_refused():
    async def scenario() -> None:
        coordinator = await started()
        await Consumer(coordinator, "g", protocols=[("range", b"")]).join_and_sync()
        other_type = Consumer(coordinator, "g", protocol_type="connect", protocols=[("range", b"")])
        assert (await other_type.join()).error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        no_common = Consumer(coordinator, "g", protocols=[("sticky", b""), ("roundrobin", b"")])
        assert (await no_common.join()).error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        # An empty group takes any type, but not an empty one or no protocols at all.
        no_protocols = await coordinator.join(
            "fresh", "", protocol_type="consumer", protocols=[], session_timeout_ms=1000
        )
        assert no_protocols.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assert coordinator.group("fresh") is None

    run(scenario())


def test_protocol_is_chosen_by_the_members_preferences_among_those_all_support():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", protocols=[("range", b"r0"), ("roundrobin", b"rr0")]),
            Consumer(coordinator, "g", protocols=[("roundrobin", b"rr1"), ("range", b"r1")]),
            Consumer(
                coordinator,
                "g",
                protocols=[("sticky", b"s2"), ("roundrobin", b"rr2"), ("range", b"r2")],
            ),
        ]
        results = await form_group(consumers)
        assert {j.protocol_name for j, _ in results} == {"roundrobin"}
        leader_join = next(c.last_join for c in consumers if c.is_leader)
        assert leader_join is not None
        assert sorted(m.metadata for m in leader_join.members) == [b"rr0", b"rr1", b"rr2"]

    run(scenario())


def test_sync_checks_generation_protocol_and_rebalance_state():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await form_group(consumers)
        member = consumers[0]
        wrong_generation = await coordinator.sync("g", 7, member.member_id)
        assert wrong_generation.error_code == ErrorCode.ILLEGAL_GENERATION
        wrong_name = await coordinator.sync("g", 1, member.member_id, protocol_name="sticky")
        assert wrong_name.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        wrong_type = await coordinator.sync("g", 1, member.member_id, protocol_type="connect")
        assert wrong_type.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        # A Stable group answers a repeated SyncGroup with the member's assignment.
        again = await member.sync()
        assert again.error_code == ErrorCode.NONE
        assert again.assignment == f"for {member.member_id}".encode()

        leader = next(c for c in consumers if c.is_leader)
        rejoin = asyncio.ensure_future(leader.join())
        await asyncio.sleep(0.02)
        follower = next(c for c in consumers if not c.is_leader)
        assert (await follower.sync()).error_code == ErrorCode.REBALANCE_IN_PROGRESS
        assert (await follower.heartbeat()).error_code == ErrorCode.REBALANCE_IN_PROGRESS
        await asyncio.gather(rejoin, follower.join())
        assert (await follower.heartbeat()).error_code == ErrorCode.NONE

    run(scenario())


def test_rebalance_during_completing_rebalance_fails_parked_syncs():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await asyncio.gather(*(c.join() for c in consumers))
        follower = next(c for c in consumers if not c.is_leader)
        parked = asyncio.ensure_future(follower.sync())
        await asyncio.sleep(0.02)
        newcomer = asyncio.ensure_future(Consumer(coordinator, "g", client_id="late").join())
        result = await parked
        assert result.error_code == ErrorCode.REBALANCE_IN_PROGRESS
        newcomer.cancel()

    run(scenario())


def test_dynamic_member_that_does_not_rejoin_is_removed_when_the_rebalance_times_out():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", client_id=f"c{i}", rebalance_timeout_ms=200)
            for i in range(2)
        ]
        await form_group(consumers)
        leader = next(c for c in consumers if c.is_leader)
        laggard = next(c for c in consumers if not c.is_leader)
        rejoin = asyncio.ensure_future(leader.join())
        await asyncio.sleep(0.05)
        # Still heartbeating, but never rejoining.
        assert (await laggard.heartbeat()).error_code == ErrorCode.REBALANCE_IN_PROGRESS
        result = await rejoin
        assert result.error_code == ErrorCode.NONE
        assert result.generation_id == 2
        assert [m.member_id for m in result.members] == [leader.member_id]
        assert (await laggard.heartbeat()).error_code == ErrorCode.UNKNOWN_MEMBER_ID

    run(scenario())


def test_leader_that_does_not_rejoin_hands_leadership_to_a_member_that_did():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", client_id=f"c{i}", rebalance_timeout_ms=150)
            for i in range(2)
        ]
        await form_group(consumers)
        old_leader = next(c for c in consumers if c.is_leader)
        follower = next(c for c in consumers if not c.is_leader)
        # A changed subscription makes the follower rejoin; the old leader never does.
        follower.protocols = [("range", subscription("topic", "other"))]
        result = await follower.join()
        assert result.generation_id == 2
        assert result.leader == follower.member_id
        assert (await old_leader.heartbeat()).error_code == ErrorCode.UNKNOWN_MEMBER_ID

    run(scenario())


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", client_id=f"c{i}", rebalance_timeout_ms=150)
            for i in range(2)
        ]
        await asyncio.gather(*(c.join() for c in consumers))
        leader = next(c for c in consumers if c.is_leader)
        follower = next(c for c in consumers if not c.is_leader)
        follower_sync = asyncio.ensure_future(follower.sync())
        # The leader never sends its assignment: the follower is told to rejoin.
        result = await follower_sync
        assert result.error_code == ErrorCode.REBALANCE_IN_PROGRESS
        group = coordinator.group("g")
        assert group is not None and leader.member_id not in group.members
        rejoined = await follower.join()
        assert rejoined.generation_id == 2 and rejoined.leader == follower.member_id

    run(scenario())


def test_initial_delay_gathers_members_that_arrive_close_together():
    async def scenario() -> None:
        coordinator = await started(initial_rebalance_delay_ms=150)
        early = Consumer(coordinator, "g", client_id="early", rebalance_timeout_ms=1000)
        late = Consumer(coordinator, "g", client_id="late", rebalance_timeout_ms=1000)
        loop = asyncio.get_running_loop()
        before = loop.time()
        early_join = asyncio.ensure_future(early.join())
        await asyncio.sleep(0.1)
        late_join = asyncio.ensure_future(late.join())
        results = await asyncio.gather(early_join, late_join)
        assert {r.generation_id for r in results} == {1}
        # The late member extended the delay once more.
        assert loop.time() - before >= 0.29

    run(scenario())


def test_join_validates_group_id_and_session_timeout():
    async def scenario() -> None:
        coordinator = await started(min_session_timeout_ms=100, max_session_timeout_ms=1000)

        async def join(group_id: str, session_timeout_ms: int) -> JoinResult:
            return await coordinator.join(
                group_id,
                "",
                protocol_type="consumer",
                protocols=[("range", b"")],
                session_timeout_ms=session_timeout_ms,
            )

        too_short = await join("g", 99)
        too_long = await join("g", 1001)
        no_group = await join("", 500)
        assert too_short.error_code == ErrorCode.INVALID_SESSION_TIMEOUT
        assert too_long.error_code == ErrorCode.INVALID_SESSION_TIMEOUT
        assert no_group.error_code == ErrorCode.INVALID_GROUP_ID
        assert (await coordinator.heartbeat("", 0, "m")).error_code == ErrorCode.INVALID_GROUP_ID

    run(scenario())


def test_group_max_size_refuses_extra_members():
    async def scenario() -> None:
        coordinator = await started(max_group_size=2)
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await form_group(consumers)
        extra = await Consumer(coordinator, "g", client_id="extra").join()
        assert extra.error_code == ErrorCode.GROUP_MAX_SIZE_REACHED
        assert coordinator.group("g").state is GroupState.STABLE  # type: ignore[union-attr]

    run(scenario())


def test_follower_rejoining_unchanged_in_a_stable_group_gets_the_current_generation():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await form_group(consumers)
        follower = next(c for c in consumers if not c.is_leader)
        again = await follower.join()
        assert again.error_code == ErrorCode.NONE
        assert again.generation_id == 1
        assert again.members == []
        assert coordinator.group("g").state is GroupState.STABLE  # type: ignore[union-attr]

    run(scenario())


def test_closing_the_coordinator_answers_parked_requests_with_not_coordinator():
    async def scenario() -> None:
        coordinator = await started(initial_rebalance_delay_ms=5000)
        parked = asyncio.ensure_future(Consumer(coordinator, "g").join())
        await asyncio.sleep(0.05)
        await coordinator.close()
        assert (await parked).error_code == ErrorCode.NOT_COORDINATOR
        assert (await Consumer(coordinator, "g").join()).error_code == ErrorCode.NOT_COORDINATOR

    run(scenario())


def test_a_join_abandoned_by_its_client_counts_as_not_rejoining():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [
            Consumer(coordinator, "g", client_id=f"c{i}", rebalance_timeout_ms=150)
            for i in range(2)
        ]
        await form_group(consumers)
        leader = next(c for c in consumers if c.is_leader)
        quitter = next(c for c in consumers if not c.is_leader)
        # The quitter asks for a rebalance, then its connection closes while parked.
        quitter.protocols = [("range", subscription("topic", "more"))]
        quitter_join = asyncio.ensure_future(quitter.join())
        await asyncio.sleep(0.02)
        assert coordinator.group("g").state is GroupState.PREPARING_REBALANCE  # type: ignore[union-attr]
        quitter_join.cancel()
        leader_join = asyncio.ensure_future(leader.join())
        result = await leader_join
        assert result.error_code == ErrorCode.NONE and result.generation_id == 2
        assert [m.member_id for m in result.members] == [leader.member_id]

    run(scenario())


def test_a_protocol_named_twice_counts_once():
    async def scenario() -> None:
        coordinator = await started()
        doubled = Consumer(coordinator, "g", protocols=[("range", b"first"), ("range", b"second")])
        other = Consumer(coordinator, "g", protocols=[("range", b"other")])
        results = await form_group([doubled, other])
        assert {j.protocol_name for j, _ in results} == {"range"}
        leader_join = next(c.last_join for c in (doubled, other) if c.is_leader)
        assert leader_join is not None
        by_id = {m.member_id: m.metadata for m in leader_join.members}
        assert by_id[doubled.member_id] == b"first"

    run(scenario())
