"""Replica sets chosen by the client (CreateTopics/CreatePartitions assignments) are
kept: the first segment is placed on them, and later segments stay on them while any
of those nodes is alive."""

from __future__ import annotations

import pytest

from broker.coordination.commands import (
    CreatePartitions,
    CreateTopic,
    RegisterBroker,
    RollSegment,
    UnregisterBroker,
    command_from_dict,
    command_to_dict,
)
from broker.coordination.errors import MetadataError, Refusal
from broker.coordination.state import ClusterState

pytestmark = pytest.mark.unit

T0 = 1_000_000
TOPIC_ID = b"\x07" * 16


def cluster(nodes: int) -> ClusterState:
    state = ClusterState()
    for n in range(1, nodes + 1):
        state.apply(RegisterBroker(n, "127.0.0.1", 9000 + n, None), T0)
    return state


def refused(result: object, error: MetadataError) -> bool:
    return isinstance(result, Refusal) and result.error is error


def test_the_first_segment_is_placed_on_the_chosen_replicas_leader_first() -> None:
    state = cluster(5)
    chosen = [[4, 2], [5, 1], [2, 3]]
    assert not isinstance(state.apply(CreateTopic("a", TOPIC_ID, assignments=chosen), T0), Refusal)
    topic = state.topics["a"]
    assert topic.replication_factor == 2
    assert [p.active.replicas for p in topic.partitions] == chosen
    assert [p.active.leader for p in topic.partitions] == [4, 5, 2]
    assert [p.assigned for p in topic.partitions] == chosen
    # The choice survives a snapshot (a restarted or new node sees the same placement).
    copy = ClusterState.from_snapshot(state.to_snapshot())
    assert [p.assigned for p in copy.topics["a"].partitions] == chosen
    assert copy.to_snapshot() == state.to_snapshot()


def test_the_command_round_trips_through_its_log_form() -> None:
    command = CreateTopic("a", TOPIC_ID, assignments=[[1, 2], [2, 3]])
    assert command_from_dict(command_to_dict(command)) == command
    grow = CreatePartitions("a", 4, [[3, 1], [1, 2]])
    assert command_from_dict(command_to_dict(grow)) == grow


def test_later_segments_rotate_among_the_chosen_replicas_only() -> None:
    state = cluster(5)
    state.apply(CreateTopic("a", TOPIC_ID, assignments=[[2, 4, 5]]), T0)
    partition = state.topics["a"].partitions[0]
    leaders = []
    for epoch in range(6):
        result = state.apply(RollSegment("a", 0, epoch, (epoch + 1) * 10), T0)
        assert not isinstance(result, Refusal), result
        leaders.append(partition.active.leader)
        assert sorted(partition.active.replicas) == [2, 4, 5]
    # Leadership still rotates (the load spreads) but never leaves the chosen nodes.
    assert set(leaders) == {2, 4, 5}


def test_bad_assignments_are_refused_as_kafka_does() -> None:
    state = cluster(3)
    cases = {
        "uneven": [[1, 2], [3]],
        "twice": [[1, 1]],
        "unknown": [[1, 9]],
        "empty": [[]],
    }
    for name, chosen in cases.items():
        result = state.apply(CreateTopic(name, bytes([len(name)]) * 16, assignments=chosen), T0)
        assert refused(result, MetadataError.INVALID_REPLICA_ASSIGNMENT), (name, result)
        assert name not in state.topics
    both = state.apply(CreateTopic("both", TOPIC_ID, num_partitions=1, assignments=[[1]]), T0)
    assert refused(both, MetadataError.INVALID_REQUEST)


def test_new_partitions_take_their_chosen_replicas_with_the_topics_factor() -> None:
    state = cluster(4)
    state.apply(CreateTopic("a", TOPIC_ID, 1, 2), T0)
    wrong_factor = state.apply(CreatePartitions("a", 2, [[1, 2, 3]]), T0)
    assert refused(wrong_factor, MetadataError.INVALID_REPLICA_ASSIGNMENT)
    wrong_count = state.apply(CreatePartitions("a", 3, [[1, 2]]), T0)
    assert refused(wrong_count, MetadataError.INVALID_REPLICA_ASSIGNMENT)
    assert not isinstance(state.apply(CreatePartitions("a", 3, [[4, 3], [3, 1]]), T0), Refusal)
    partitions = state.topics["a"].partitions
    assert partitions[0].assigned is None
    assert [p.active.replicas for p in partitions[1:]] == [[4, 3], [3, 1]]


def test_a_removed_node_leaves_the_chosen_set_and_its_replacement_joins_it() -> None:
    state = cluster(4)
    state.apply(CreateTopic("a", TOPIC_ID, assignments=[[1, 2, 3]]), T0)
    state.apply(UnregisterBroker(3), T0)
    partition = state.topics["a"].partitions[0]
    assert partition.assigned == [1, 2, 4]
    assert sorted(partition.active.replicas) == [1, 2, 4]
