"""Re-replication of sealed segments in the metadata: who copies what, when a copy
counts, and what happens when targets or holders go away."""

from __future__ import annotations

import pytest

from broker.coordination.commands import (
    AlterClusterConfig,
    BrokerHeartbeat,
    CreateTopic,
    PlanCopies,
    RegisterBroker,
    RollSegment,
    SegmentCopied,
    UnregisterBroker,
    command_from_dict,
    command_to_dict,
)
from broker.coordination.errors import MetadataError, Refusal
from broker.coordination.model import Segment
from broker.coordination.resync_plan import needs_planning, under_replicated
from broker.coordination.state import ClusterState

pytestmark = pytest.mark.unit

T0 = 1_000_000


def cluster(nodes: int, racks: dict[int, str] | None = None) -> ClusterState:
    state = ClusterState()
    for n in range(1, nodes + 1):
        rack = None if racks is None else racks.get(n)
        state.apply(RegisterBroker(n, "127.0.0.1", 9000 + n, rack), T0)
    return state


def topic_with_sealed(state: ClusterState, name: str = "t", rolls: int = 3, rf: int = 3) -> None:
    assert not isinstance(state.apply(CreateTopic(name, b"\x01" * 16, 1, rf), T0), Refusal)
    for i in range(rolls):
        result = state.apply(RollSegment(name, 0, i, (i + 1) * 10), T0)
        assert not isinstance(result, Refusal), result


def sealed(state: ClusterState, name: str = "t") -> list[Segment]:
    return [s for s in state.topics[name].partitions[0].segments if s.sealed]


def test_removing_a_holder_assigns_a_copy_target_that_counts_only_once_copied() -> None:
    state = cluster(4)
    topic_with_sealed(state)
    gone = sealed(state)[0].replicas[1]
    held_by_gone = [s for s in sealed(state) if gone in s.replicas]
    assert held_by_gone
    state.apply(UnregisterBroker(gone), T0)
    for seg in held_by_gone:
        assert gone not in seg.replicas
        assert len(seg.copying) == 1
        target = seg.copying[0]
        assert target not in seg.replicas and target != gone
    assert len(under_replicated(state.topics, state.brokers)) == len(held_by_gone)

    seg = held_by_gone[0]
    target = seg.copying[0]
    assert seg.end_offset is not None
    wrong_end = state.apply(SegmentCopied("t", 0, seg.epoch, target, seg.end_offset - 1), T0)
    assert isinstance(wrong_end, Refusal) and wrong_end.error is MetadataError.INVALID_REQUEST
    not_target = next(n for n in seg.replicas if n != target)
    refused = state.apply(SegmentCopied("t", 0, seg.epoch, not_target, seg.end_offset), T0)
    assert isinstance(refused, Refusal) and refused.error is MetadataError.NOT_LEADER_OR_FOLLOWER
    before = state.topology_version
    assert not isinstance(state.apply(SegmentCopied("t", 0, seg.epoch, target, seg.end_offset), T0),
                          Refusal)
    assert target in seg.replicas and target in seg.in_sync and seg.copying == []
    assert state.topology_version > before
    # A second report of the same copy is refused and changes nothing.
    again = state.apply(SegmentCopied("t", 0, seg.epoch, target, seg.end_offset), T0)
    assert isinstance(again, Refusal)
    assert len(under_replicated(state.topics, state.brokers)) == len(held_by_gone) - 1


def test_copies_are_spread_over_the_spare_nodes() -> None:
    state = cluster(5)
    topic_with_sealed(state, rolls=8)
    gone = 1
    state.apply(UnregisterBroker(gone), T0)
    targets = [s.copying[0] for s in sealed(state) if s.copying]
    assert len(targets) >= 4
    counts = {n: targets.count(n) for n in set(targets)}
    assert max(counts.values()) - min(counts.values()) <= 2, counts
    assert len(counts) >= 2


def test_a_target_on_a_rack_the_holders_do_not_use_is_preferred() -> None:
    state = cluster(5, racks={1: "a", 2: "a", 3: "b", 4: "b", 5: "c"})
    topic_with_sealed(state, rolls=1)
    seg = sealed(state)[0]
    gone = next(r for r in seg.replicas if state.brokers[r].rack == "c") if any(
        state.brokers[r].rack == "c" for r in seg.replicas) else seg.replicas[-1]
    state.apply(UnregisterBroker(gone), T0)
    held_racks = {state.brokers[r].rack for r in seg.replicas}
    target = seg.copying[0]
    spare_racks = {state.brokers[n].rack for n in state.brokers if n not in seg.replicas}
    if spare_racks - held_racks:
        assert state.brokers[target].rack not in held_racks


def test_a_target_that_dies_mid_copy_is_replaced_and_its_late_report_refused() -> None:
    state = cluster(5)
    topic_with_sealed(state, rolls=1)
    seg = sealed(state)[0]
    state.apply(UnregisterBroker(seg.replicas[1]), T0)
    target = seg.copying[0]
    # Everyone but the target keeps heartbeating past the session timeout.
    later = T0 + 20_000
    for n in state.brokers:
        if n != target:
            state.apply(BrokerHeartbeat(n), later)
    assert needs_planning(state.topics, state.brokers, state.live_broker_ids(later))
    state.apply(PlanCopies(), later)
    assert seg.copying and target not in seg.copying
    assert seg.end_offset is not None
    late = state.apply(SegmentCopied("t", 0, seg.epoch, target, seg.end_offset), later)
    assert isinstance(late, Refusal)
    assert not needs_planning(state.topics, state.brokers, state.live_broker_ids(later))


def test_a_dead_target_stays_when_no_other_node_can_take_over() -> None:
    state = cluster(4)
    topic_with_sealed(state, rolls=1)
    seg = sealed(state)[0]
    state.apply(UnregisterBroker(seg.replicas[1]), T0)
    target = seg.copying[0]
    later = T0 + 20_000
    for n in state.brokers:
        if n != target:
            state.apply(BrokerHeartbeat(n), later)
    assert not needs_planning(state.topics, state.brokers, state.live_broker_ids(later))
    state.apply(PlanCopies(), later)
    assert seg.copying == [target]


def test_a_segment_whose_last_holder_is_gone_is_listed_with_no_target() -> None:
    state = cluster(3)
    topic_with_sealed(state, rolls=1, rf=1)
    seg = sealed(state)[0]
    holder = seg.replicas[0]
    state.apply(UnregisterBroker(holder), T0)
    gaps = under_replicated(state.topics, state.brokers)
    assert [(g.epoch, g.holders, g.copying) for g in gaps] == [(seg.epoch, [], [])]
    assert not needs_planning(state.topics, state.brokers, state.live_broker_ids(T0))


def test_nothing_to_copy_when_every_sealed_segment_has_its_factor() -> None:
    state = cluster(4)
    topic_with_sealed(state)
    assert under_replicated(state.topics, state.brokers) == []
    assert not needs_planning(state.topics, state.brokers, state.live_broker_ids(T0))
    before = [s.to_dict() for s in sealed(state)]
    state.apply(PlanCopies(), T0)
    assert [s.to_dict() for s in sealed(state)] == before


def test_factor_is_capped_at_the_registered_brokers() -> None:
    state = cluster(3)
    topic_with_sealed(state, rolls=2)
    state.apply(UnregisterBroker(3), T0)
    # Two brokers left: every sealed segment is held by both, nothing to copy to.
    assert all(not s.copying for s in sealed(state))
    assert under_replicated(state.topics, state.brokers) == []


def test_copy_state_survives_snapshots_and_commands_round_trip() -> None:
    state = cluster(4)
    topic_with_sealed(state)
    state.apply(UnregisterBroker(2), T0)
    assert any(s.copying for s in sealed(state))
    again = ClusterState.from_snapshot(state.to_snapshot())
    assert again.to_snapshot() == state.to_snapshot()
    for command in (PlanCopies(), SegmentCopied("t", 0, 1, 4, 20)):
        assert command_from_dict(command_to_dict(command)) == command
    # Snapshots written before copies existed still load.
    seg = Segment.from_dict({k: v for k, v in sealed(state)[0].to_dict().items() if k != "copying"})
    assert seg.copying == []


def test_two_members_fed_the_same_commands_plan_the_same_copies() -> None:
    a, b = cluster(5), cluster(5)
    for s in (a, b):
        topic_with_sealed(s, rolls=6)
        s.apply(UnregisterBroker(3), T0)
        s.apply(UnregisterBroker(1), T0)
    assert a.to_snapshot() == b.to_snapshot()


def _beat_all_but(state: ClusterState, silent: int, nodes: int, at_ms: int) -> None:
    for n in range(1, nodes + 1):
        if n != silent:
            state.apply(BrokerHeartbeat(n), at_ms)


def test_a_node_silent_past_the_replacement_delay_has_its_sealed_segments_copied_elsewhere() -> None:
    state = cluster(4)
    state.apply(AlterClusterConfig({"dead.broker.replacement.ms": "60000"}), T0)
    topic_with_sealed(state)
    silent = sealed(state)[0].replicas[1]
    held = [s for s in sealed(state) if silent in s.replicas]
    assert held
    # Dead by the session timeout, but not yet for the replacement delay: nothing moves.
    _beat_all_but(state, silent, 4, T0 + 30_000)
    assert not needs_planning(state.topics, state.counted_holders(T0 + 30_000), state.live_broker_ids(T0 + 30_000))
    state.apply(PlanCopies(), T0 + 30_000)
    assert all(s.copying == [] for s in held)
    # Past it: the lowest live node sees work to plan, and each segment gets a target.
    later = T0 + 61_000
    _beat_all_but(state, silent, 4, later)
    assert needs_planning(state.topics, state.counted_holders(later), state.live_broker_ids(later))
    state.apply(PlanCopies(), later)
    for seg in held:
        assert len(seg.copying) == 1 and seg.copying[0] not in seg.replicas and seg.copying[0] != silent
        # The silent node is still registered and still named as a replica: if it comes
        # back, it serves its copies again.
        assert silent in seg.replicas
    seg = held[0]
    assert seg.end_offset is not None
    state.apply(SegmentCopied("t", 0, seg.epoch, seg.copying[0], seg.end_offset), later)
    assert len([n for n in seg.in_sync if n != silent]) == 3
    # Back again: it counts as a holder once more, and the extra copies stay.
    state.apply(BrokerHeartbeat(silent), later + 1000)
    assert seg not in [g for g in state.topics["t"].partitions[0].segments if g.copying]
    assert all(g.epoch != seg.epoch for g in under_replicated(state.topics, state.counted_holders(later + 1000)))


def test_a_replacement_delay_of_zero_never_replaces_a_silent_node() -> None:
    state = cluster(4)
    state.apply(AlterClusterConfig({"dead.broker.replacement.ms": "0"}), T0)
    topic_with_sealed(state)
    silent = sealed(state)[0].replicas[1]
    much_later = T0 + 10 * 24 * 3600 * 1000
    _beat_all_but(state, silent, 4, much_later)
    state.apply(PlanCopies(), much_later)
    assert all(s.copying == [] for s in sealed(state))
    assert state.counted_holders(much_later).keys() == {1, 2, 3, 4}
    refused = state.apply(AlterClusterConfig({"dead.broker.replacement.ms": "-1"}), much_later)
    assert isinstance(refused, Refusal) and refused.error is MetadataError.INVALID_CONFIG


def test_a_follower_silent_past_the_replacement_delay_hands_on_its_place_in_the_active_segment() -> None:
    state = cluster(4)
    state.apply(AlterClusterConfig({"dead.broker.replacement.ms": "60000"}), T0)
    assert not isinstance(state.apply(CreateTopic("t", b"\x01" * 16, 1, 3), T0), Refusal)
    active = state.topics["t"].partitions[0].active
    silent = next(r for r in active.replicas if r != active.leader)
    spare = ({1, 2, 3, 4} - set(active.replicas)).pop()
    # Dead by the session timeout only: it keeps its place (it may be restarting).
    _beat_all_but(state, silent, 4, T0 + 30_000)
    state.apply(PlanCopies(), T0 + 30_000)
    assert silent in active.replicas
    later = T0 + 61_000
    _beat_all_but(state, silent, 4, later)
    assert needs_planning(state.topics, state.counted_holders(later), state.live_broker_ids(later))
    topology = state.topology_version
    state.apply(PlanCopies(), later)
    assert silent not in active.replicas and spare in active.replicas and len(active.replicas) == 3
    assert silent not in active.in_sync
    assert state.topology_version > topology, "the leader and the newcomer must hear of it"
    assert not needs_planning(state.topics, state.counted_holders(later), state.live_broker_ids(later))


def test_without_a_spare_node_a_long_silent_follower_keeps_its_place() -> None:
    state = cluster(3)
    state.apply(AlterClusterConfig({"dead.broker.replacement.ms": "60000"}), T0)
    assert not isinstance(state.apply(CreateTopic("t", b"\x01" * 16, 1, 3), T0), Refusal)
    active = state.topics["t"].partitions[0].active
    silent = next(r for r in active.replicas if r != active.leader)
    later = T0 + 61_000
    _beat_all_but(state, silent, 3, later)
    assert not needs_planning(state.topics, state.counted_holders(later), state.live_broker_ids(later))
    state.apply(PlanCopies(), later)
    assert sorted(active.replicas) == [1, 2, 3]
