"""ClusterState driven directly, without Raft: every command, its refusals, determinism."""

from __future__ import annotations

import json
import random

import pytest

from broker.coordination.commands import (
    AllocateProducerIds,
    AlterClusterConfig,
    AlterTopicConfig,
    BrokerHeartbeat,
    CommitOffsets,
    CreatePartitions,
    CreateTopic,
    DeleteGroupOffsets,
    DeleteOffsets,
    DeleteScramCredential,
    DeleteTopic,
    ExpireOffsets,
    OffsetEntry,
    ReassignLeader,
    RegisterBroker,
    RenewLease,
    RollSegment,
    SetClusterId,
    UnregisterBroker,
    UpdateIsr,
    UpsertScramCredential,
    command_from_dict,
    command_to_dict,
)
from broker.coordination.errors import MetadataError, Refusal
from broker.coordination.results import (
    BrokerRegistered,
    ClusterIdSet,
    GroupOffsetsDeleted,
    IsrUpdated,
    LeaseGranted,
    OffsetsResult,
    ProducerIdBlock,
    SegmentRolled,
    TopicCreated,
    TopicDeleted,
)
from broker.coordination.state import PRODUCER_ID_BLOCK_SIZE, ClusterState

pytestmark = pytest.mark.unit

T0 = 1_000_000


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def cluster(nodes: int = 3) -> ClusterState:
    state = ClusterState()
    for n in range(1, nodes + 1):
        assert isinstance(
            state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n), T0), BrokerRegistered
        )
    return state


def refused(result: object, error: MetadataError) -> bool:
    return isinstance(result, Refusal) and result.error is error


# ------------------------------------------------------------------ brokers


def test_register_heartbeat_and_liveness_follow_the_command_clock() -> None:
    state = cluster(2)
    timeout = state.session_timeout_ms()
    assert state.live_broker_ids(T0) == [1, 2]
    state.apply(BrokerHeartbeat(1), T0 + timeout - 1)
    assert state.live_broker_ids(T0 + timeout) == [1]
    assert state.brokers[1].last_heartbeat_ms == T0 + timeout - 1


def test_a_broker_registered_with_its_own_session_timeout_is_judged_by_it() -> None:
    state = cluster(1)
    assert state.apply(RegisterBroker(2, "127.0.0.1", 9092, session_timeout_ms=1500), T0) is not None
    assert state.live_broker_ids(T0 + 1499) == [1, 2]
    assert state.live_broker_ids(T0 + 1500) == [1]
    assert state.broker_alive(1, T0 + state.session_timeout_ms() - 1)
    # It survives a snapshot, and a snapshot from before the field means the default.
    restored = ClusterState.from_snapshot(state.to_snapshot())
    assert restored.brokers[2].session_timeout_ms == 1500 and not restored.broker_alive(2, T0 + 1500)
    old = json.loads(state.to_snapshot())
    brokers = old["brokers"]
    for broker in brokers.values() if isinstance(brokers, dict) else brokers:
        broker.pop("session_timeout_ms")
    assert ClusterState.from_snapshot(json.dumps(old).encode()).broker_alive(2, T0 + 1500)


@pytest.mark.parametrize("timeout", [99, 3_600_001, -1, "1500", 1.5, True])
def test_a_registration_with_a_bad_session_timeout_is_refused(timeout: object) -> None:
    state = cluster(1)
    before = state.to_snapshot()
    result = state.apply(RegisterBroker(2, "127.0.0.1", 9092, session_timeout_ms=timeout), T0)  # type: ignore[arg-type]
    assert refused(result, MetadataError.INVALID_REQUEST)
    assert state.to_snapshot() == before


def test_reregistration_updates_address_and_raises_broker_epoch() -> None:
    state = cluster(1)
    first = state.brokers[1].broker_epoch
    result = state.apply(
        RegisterBroker(1, "10.0.0.9", 19092, rack="r1", raft_address="10.0.0.9:1"), T0 + 5
    )
    assert isinstance(result, BrokerRegistered) and result.broker_epoch > first
    b = state.brokers[1]
    assert (b.host, b.port, b.rack, b.raft_address, b.registered_ms) == (
        "10.0.0.9",
        19092,
        "r1",
        "10.0.0.9:1",
        T0,
    )


def test_heartbeat_and_unregister_of_unknown_broker_are_refused() -> None:
    state = cluster(1)
    assert refused(state.apply(BrokerHeartbeat(7), T0), MetadataError.BROKER_ID_NOT_REGISTERED)
    assert refused(state.apply(UnregisterBroker(7), T0), MetadataError.BROKER_ID_NOT_REGISTERED)
    assert not isinstance(state.apply(UnregisterBroker(1), T0), Refusal)
    assert state.brokers == {}


def test_register_with_bad_port_is_refused_and_changes_nothing() -> None:
    state = ClusterState()
    before = state.to_snapshot()
    assert refused(state.apply(RegisterBroker(1, "h", 0), T0), MetadataError.INVALID_REQUEST)
    assert state.to_snapshot() == before.replace(b'"clock_ms":0', f'"clock_ms":{T0}'.encode())


def test_clock_never_goes_back_when_proposers_disagree() -> None:
    state = cluster(1)
    state.apply(BrokerHeartbeat(1), T0 + 500)
    state.apply(BrokerHeartbeat(1), T0 + 100)  # a proposer with a slower clock
    assert state.clock_ms == T0 + 500
    assert state.brokers[1].last_heartbeat_ms == T0 + 500


# ------------------------------------------------------------------- topics


def test_create_topic_places_partitions_round_robin_over_live_brokers() -> None:
    state = cluster(3)
    result = state.apply(CreateTopic("orders", tid(1), 4, 2, {"cleanup.policy": "compact"}), T0)
    assert result == TopicCreated("orders", tid(1), 4, 2)
    topic = state.topic("orders")
    assert topic is not None and topic.config == {"cleanup.policy": "compact"}
    assert [p.active.replicas for p in topic.partitions] == [[1, 2], [2, 3], [3, 1], [1, 2]]
    assert [state.leader_for("orders", i) for i in range(4)] == [1, 2, 3, 1]
    # the next topic continues the rotation instead of piling onto node 1
    state.apply(CreateTopic("audit", tid(2), 1, 1), T0)
    assert state.leader_for("audit", 0) == 2
    assert state.topic_by_id(tid(2)) is state.topic("audit")


def test_create_topic_skips_dead_brokers() -> None:
    state = cluster(3)
    timeout = state.session_timeout_ms()
    state.apply(BrokerHeartbeat(1), T0 + timeout)
    state.apply(BrokerHeartbeat(3), T0 + timeout)
    state.apply(CreateTopic("t", tid(1), 4, 1), T0 + timeout)
    assert {state.leader_for("t", i) for i in range(4)} == {1, 3}


def test_create_topic_defaults_come_from_cluster_config() -> None:
    state = cluster(3)
    state.apply(AlterClusterConfig({"num.partitions": "5", "default.replication.factor": "3"}), T0)
    result = state.apply(CreateTopic("t", tid(1)), T0)
    assert result == TopicCreated("t", tid(1), 5, 3)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (CreateTopic("bad name", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic("..", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic("x" * 250, tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        # "$" in the old pattern matched before a trailing newline.
        (CreateTopic("nl\n", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic("a\nb", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic(".", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic("", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic("caf\u00e9", tid(9), 1, 1), MetadataError.INVALID_TOPIC_EXCEPTION),
        (CreateTopic("t", tid(9), 1, 1), MetadataError.TOPIC_ALREADY_EXISTS),
        (CreateTopic("u", tid(1), 1, 1), MetadataError.INVALID_REQUEST),  # id in use
        (CreateTopic("u", bytes(16), 1, 1), MetadataError.INVALID_REQUEST),
        (CreateTopic("u", b"short", 1, 1), MetadataError.INVALID_REQUEST),
        (CreateTopic("u", tid(9), 0, 1), MetadataError.INVALID_PARTITIONS),
        (CreateTopic("u", tid(9), 1, 4), MetadataError.INVALID_REPLICATION_FACTOR),
        (CreateTopic("u", tid(9), 1, 0), MetadataError.INVALID_REPLICATION_FACTOR),
        (CreateTopic("u", tid(9), 1, 1, {"a": 1}), MetadataError.INVALID_CONFIG),  # type: ignore[dict-item]
    ],
)
def test_create_topic_refusals_leave_state_unchanged(
    command: CreateTopic, error: MetadataError
) -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    before = state.to_snapshot()
    assert refused(state.apply(command, T0), error)
    assert state.to_snapshot() == before


@pytest.mark.parametrize("name", ["a", "x" * 249, "A.b_c-9", "...", ".a", "__internal"])
def test_every_name_kafka_allows_is_a_legal_topic_name(name: str) -> None:
    state = cluster(1)
    assert state.apply(CreateTopic(name, tid(1), 1, 1), T0) == TopicCreated(name, tid(1), 1, 1)


def test_create_topic_with_no_live_broker_is_refused() -> None:
    state = ClusterState()
    assert refused(
        state.apply(CreateTopic("t", tid(1), 1, 1), T0), MetadataError.INVALID_REPLICATION_FACTOR
    )


def test_delete_topic_removes_it_and_its_committed_offsets() -> None:
    state = cluster(1)
    state.apply(CreateTopic("a", tid(1), 1, 1), T0)
    state.apply(CreateTopic("b", tid(2), 1, 1), T0)
    state.apply(CommitOffsets("g", [OffsetEntry("a", 0, 5), OffsetEntry("b", 0, 6)]), T0)
    state.apply(CommitOffsets("only-a", [OffsetEntry("a", 0, 1)]), T0)
    assert state.apply(DeleteTopic("a"), T0) == TopicDeleted("a", tid(1))
    assert state.topic("a") is None
    assert list(state.committed_offsets("g")) == [("b", 0)]
    assert state.groups_with_offsets() == ["g"]
    assert refused(state.apply(DeleteTopic("a"), T0), MetadataError.UNKNOWN_TOPIC_OR_PARTITION)


def test_create_partitions_only_grows() -> None:
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 2, 1), T0)
    assert not isinstance(state.apply(CreatePartitions("t", 5), T0), Refusal)
    topic = state.topic("t")
    assert topic is not None and [p.index for p in topic.partitions] == [0, 1, 2, 3, 4]
    assert refused(state.apply(CreatePartitions("t", 5), T0), MetadataError.INVALID_PARTITIONS)
    assert refused(state.apply(CreatePartitions("t", 3), T0), MetadataError.INVALID_PARTITIONS)
    assert refused(
        state.apply(CreatePartitions("nope", 3), T0), MetadataError.UNKNOWN_TOPIC_OR_PARTITION
    )


def test_alter_topic_and_cluster_config() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 1, 1, {"retention.ms": "1000", "segment.bytes": "1"}), T0)
    state.apply(AlterTopicConfig("t", {"retention.ms": "2000"}, ["segment.bytes"]), T0)
    topic = state.topic("t")
    assert topic is not None and topic.config == {"retention.ms": "2000"}
    assert refused(
        state.apply(AlterTopicConfig("x", {}), T0), MetadataError.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert refused(state.apply(AlterTopicConfig("t", {"": "v"}), T0), MetadataError.INVALID_CONFIG)

    state.apply(AlterClusterConfig({"log.retention.ms": "5"}), T0)
    assert state.config_value("log.retention.ms") == "5"
    state.apply(AlterClusterConfig({}, ["log.retention.ms"]), T0)
    assert state.config_value("log.retention.ms") == ""
    for name, value in [
        ("default.replication.factor", "zero"),
        ("num.partitions", "0"),
        ("broker.session.timeout.ms", "-5"),
        ("offset.metadata.max.bytes", "lots"),
    ]:
        bad = AlterClusterConfig({name: value})
        assert refused(state.apply(bad, T0), MetadataError.INVALID_CONFIG), name
    assert not isinstance(
        state.apply(AlterClusterConfig({"offset.metadata.max.bytes": "0"}), T0), Refusal
    )


def test_topology_version_moves_only_for_what_metadata_shows() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    topology, version = state.topology_version, state.version
    state.apply(BrokerHeartbeat(1), T0 + 1)
    state.apply(CommitOffsets("g", [OffsetEntry("t", 0, 1)]), T0 + 1)
    state.apply(RenewLease("t", 0, 0, 1, T0 + 100), T0 + 1)
    assert state.topology_version == topology and state.version == version + 3
    state.apply(RollSegment("t", 0, 0, 10), T0 + 2)
    assert state.topology_version == topology + 1
    state.apply(DeleteTopic("nope"), T0 + 3)  # refused: no version change
    assert state.version == version + 4


# ------------------------------------------------------------------ offsets


def test_commit_offsets_batch_with_per_partition_refusals() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 2, 1), T0)
    too_big = "m" * (int(state.config_value("offset.metadata.max.bytes")) + 1)
    result = state.apply(
        CommitOffsets(
            "g",
            [
                OffsetEntry("t", 0, 10, 3, "meta"),
                OffsetEntry("t", 1, 20, metadata=too_big),
                OffsetEntry("t", 2, 30),
                OffsetEntry("gone", 0, 1),
            ],
            expire_ms=T0 + 99,
        ),
        T0 + 7,
    )
    assert isinstance(result, OffsetsResult)
    assert [o.error for o in result.partitions] == [
        None,
        MetadataError.OFFSET_METADATA_TOO_LARGE,
        MetadataError.UNKNOWN_TOPIC_OR_PARTITION,
        MetadataError.UNKNOWN_TOPIC_OR_PARTITION,
    ]
    committed = state.committed_offset("g", "t", 0)
    assert committed is not None
    assert (committed.offset, committed.leader_epoch, committed.metadata) == (10, 3, "meta")
    assert (committed.commit_ms, committed.expire_ms) == (T0 + 7, T0 + 99)
    assert state.committed_offset("g", "t", 1) is None
    state.apply(CommitOffsets("g", [OffsetEntry("t", 0, 11)]), T0 + 8)
    latest = state.committed_offset("g", "t", 0)
    assert latest is not None and latest.offset == 11


def test_delete_offsets_and_group_offsets() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 2, 1), T0)
    state.apply(CommitOffsets("g", [OffsetEntry("t", 0, 1), OffsetEntry("t", 1, 2)]), T0)
    state.apply(CommitOffsets("h", [OffsetEntry("t", 0, 3)]), T0)
    assert state.groups_with_offsets() == ["g", "h"]
    result = state.apply(DeleteOffsets("g", [("t", 0), ("x", 0)]), T0)
    assert isinstance(result, OffsetsResult)
    assert [o.error for o in result.partitions] == [None, MetadataError.UNKNOWN_TOPIC_OR_PARTITION]
    assert list(state.committed_offsets("g")) == [("t", 1)]
    assert refused(
        state.apply(DeleteOffsets("zz", [("t", 0)]), T0), MetadataError.GROUP_ID_NOT_FOUND
    )
    assert state.apply(DeleteGroupOffsets("h"), T0) == GroupOffsetsDeleted("h", 1)
    assert refused(state.apply(DeleteGroupOffsets("h"), T0), MetadataError.GROUP_ID_NOT_FOUND)
    assert state.groups_with_offsets() == ["g"]


def test_expire_offsets_uses_the_command_time() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 2, 1), T0)
    state.apply(CommitOffsets("g", [OffsetEntry("t", 0, 1)], expire_ms=T0 + 10), T0)
    state.apply(CommitOffsets("g", [OffsetEntry("t", 1, 1)]), T0)
    assert state.apply(ExpireOffsets(), T0 + 9) == GroupOffsetsDeleted("", 0)
    assert state.apply(ExpireOffsets(), T0 + 10) == GroupOffsetsDeleted("", 1)
    assert list(state.committed_offsets("g")) == [("t", 1)]


# ------------------------------------------------------------- producer ids


def test_producer_id_blocks_never_overlap() -> None:
    state = cluster(2)
    a = state.apply(AllocateProducerIds(1), T0)
    b = state.apply(AllocateProducerIds(2), T0)
    assert a == ProducerIdBlock(1, 0, PRODUCER_ID_BLOCK_SIZE)
    assert isinstance(b, ProducerIdBlock) and b.first_id == a.last_id + 1
    assert refused(state.apply(AllocateProducerIds(9), T0), MetadataError.BROKER_ID_NOT_REGISTERED)


# ----------------------------------------------------------------- segments


def test_roll_seals_active_segment_and_rotates_leadership() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 2), T0)
    assert state.leader_for("t", 0) == 1
    rolled = state.apply(RollSegment("t", 0, 0, 100), T0)
    assert rolled == SegmentRolled("t", 0, 0, 100, 1, 2, (2, 3))
    rolled = state.apply(RollSegment("t", 0, 1, 250), T0)
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 3
    rolled = state.apply(RollSegment("t", 0, 2, 250), T0)  # empty segment may be sealed
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 1
    p = state.partition("t", 0)
    assert p is not None
    assert [(s.epoch, s.base_offset, s.end_offset) for s in p.segments] == [
        (0, 0, 100),
        (1, 100, 250),
        (2, 250, 250),
        (3, 250, None),
    ]
    assert p.leader_epoch == 3 and p.leader == 1


def test_roll_prefers_the_least_loaded_node() -> None:
    state = cluster(3)
    # node 2 leads two partitions of "busy"; rolling "t" (led by 1) must pass it over
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)  # leader 1
    state.apply(CreateTopic("busy", tid(2), 3, 1), T0)  # leaders 2, 3, 1
    state.apply(RollSegment("busy", 2, 0, 0), T0)  # 1 -> 2: node 2 now leads two
    rolled = state.apply(RollSegment("t", 0, 0, 5), T0)
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 3


def test_single_node_keeps_leading_after_roll() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    rolled = state.apply(RollSegment("t", 0, 0, 5), T0)
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 1


def test_concurrent_rolls_of_one_segment_seal_it_once() -> None:
    """Two appenders both see segment 0 full and propose a roll; the second must not seal
    the segment the first one just opened."""
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    first = state.apply(RollSegment("t", 0, 0, 100), T0)
    second = state.apply(RollSegment("t", 0, 0, 120), T0)
    assert isinstance(first, SegmentRolled)
    assert refused(second, MetadataError.FENCED_LEADER_EPOCH)
    active = state.active_segment("t", 0)
    assert active is not None and (active.epoch, active.base_offset, active.end_offset) == (
        1,
        100,
        None,
    )
    assert refused(state.apply(RollSegment("t", 0, 5, 120), T0), MetadataError.UNKNOWN_LEADER_EPOCH)


def test_roll_refusals() -> None:
    state = cluster(1)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    state.apply(RollSegment("t", 0, 0, 100), T0)
    assert refused(state.apply(RollSegment("t", 0, 1, 99), T0), MetadataError.INVALID_REQUEST)
    assert refused(
        state.apply(RollSegment("t", 1, 0, 1), T0), MetadataError.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert refused(
        state.apply(RollSegment("x", 0, 0, 1), T0), MetadataError.UNKNOWN_TOPIC_OR_PARTITION
    )
    later = T0 + state.session_timeout_ms()
    assert refused(
        state.apply(RollSegment("t", 0, 1, 200), later), MetadataError.BROKER_NOT_AVAILABLE
    )


def test_segment_for_offset_walks_the_chain() -> None:
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    for epoch, end in enumerate([10, 20, 20, 35]):
        state.apply(RollSegment("t", 0, epoch, end), T0)
    expect = {0: 0, 9: 0, 10: 1, 19: 1, 20: 3, 34: 3, 35: 4, 10_000: 4}
    for offset, epoch in expect.items():
        seg = state.segment_for_offset("t", 0, offset)
        assert seg is not None and seg.epoch == epoch, offset
    assert state.segment_for_offset("t", 0, -1) is None
    assert state.segment_for_offset("t", 3, 0) is None


def test_lease_renewal_and_write_fencing() -> None:
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    assert not state.holds_lease("t", 0, 1, 0, T0)
    assert state.apply(RenewLease("t", 0, 0, 1, T0 + 500), T0) == LeaseGranted(
        "t", 0, 0, 1, T0 + 500
    )
    assert state.holds_lease("t", 0, 1, 0, T0 + 499)
    assert not state.holds_lease("t", 0, 1, 0, T0 + 500)
    # a late renewal with an older deadline does not shorten the lease
    state.apply(RenewLease("t", 0, 0, 1, T0 + 100), T0)
    active = state.active_segment("t", 0)
    assert active is not None and active.lease_expiry_ms == T0 + 500
    assert refused(
        state.apply(RenewLease("t", 0, 0, 2, T0 + 900), T0), MetadataError.NOT_LEADER_OR_FOLLOWER
    )
    state.apply(RollSegment("t", 0, 0, 10), T0)
    # the old leader is fenced: its epoch is sealed and the lease went with it
    assert refused(
        state.apply(RenewLease("t", 0, 0, 1, T0 + 900), T0), MetadataError.FENCED_LEADER_EPOCH
    )
    assert not state.holds_lease("t", 0, 1, 0, T0 + 1)
    assert not state.holds_lease("t", 0, 2, 1, T0 + 1)  # new leader must renew first
    state.apply(RenewLease("t", 0, 1, 2, T0 + 900), T0)
    assert state.holds_lease("t", 0, 2, 1, T0 + 1)


def test_reassign_replaces_only_a_dead_leader_without_lease() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)  # leader 1
    state.apply(RenewLease("t", 0, 0, 1, T0 + 20_000), T0)
    timeout = state.session_timeout_ms()
    later = T0 + timeout
    state.apply(BrokerHeartbeat(2), later)
    state.apply(BrokerHeartbeat(3), later)
    # leader 1 stopped heartbeating but its lease still runs: refused
    assert refused(
        state.apply(ReassignLeader("t", 0, 0, 42), later), MetadataError.LEADER_STILL_ALIVE
    )
    end = T0 + 20_000
    state.apply(BrokerHeartbeat(2), end)
    state.apply(BrokerHeartbeat(3), end)
    result = state.apply(ReassignLeader("t", 0, 0, 42), end)
    assert (
        isinstance(result, SegmentRolled)
        and result.new_leader in (2, 3)
        and result.end_offset == 42
    )
    # a live leader is never replaced
    state.apply(BrokerHeartbeat(result.new_leader), end)
    assert refused(
        state.apply(ReassignLeader("t", 0, 1, 50), end), MetadataError.LEADER_STILL_ALIVE
    )


def test_a_node_lease_from_heartbeats_fences_every_segment_its_broker_leads() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 2), T0)
    leader = state.active_segment("t", 0).leader  # type: ignore[union-attr]
    assert state.apply(BrokerHeartbeat(leader, T0 + 1500), T0) is not None
    assert state.brokers[leader].lease_expiry_ms == T0 + 1500
    # A delayed beat asking for less does not shorten it.
    state.apply(BrokerHeartbeat(leader, T0 + 900), T0 + 10)
    assert state.brokers[leader].lease_expiry_ms == T0 + 1500
    for n in (1, 2, 3):
        state.apply(BrokerHeartbeat(n), T0 + 1499)
    # No segment lease was ever taken, yet the node lease refuses a takeover.
    assert refused(state.apply(ReassignLeader("t", 0, 0, 0), T0 + 1499), MetadataError.LEADER_STILL_ALIVE)
    # Once it ends the leader is replaceable, though within its 9 s session it still
    # counts as alive: it renews the lease with every beat, so a lapse means it stopped.
    assert state.broker_alive(leader, T0 + 1500)
    moved = state.apply(ReassignLeader("t", 0, 0, 0), T0 + 1500)
    assert isinstance(moved, SegmentRolled) and moved.new_leader != leader
    # A re-registration (a restart) keeps the lease its earlier incarnation was granted.
    state.apply(BrokerHeartbeat(leader, T0 + 5000), T0 + 1600)
    state.apply(RegisterBroker(leader, "127.0.0.1", 9090 + leader), T0 + 1700)
    assert state.brokers[leader].lease_expiry_ms == T0 + 5000


def test_new_segments_are_not_placed_on_a_node_whose_node_lease_lapsed() -> None:
    state = cluster(3)
    for n in (1, 2, 3):
        state.apply(BrokerHeartbeat(n, T0 + 1500), T0)
    assert state.placeable_broker_ids(T0 + 1000) == [1, 2, 3]
    # Node 2 stopped beating: alive by its session for seconds yet, leaseless now.
    for n in (1, 3):
        state.apply(BrokerHeartbeat(n, T0 + 3500), T0 + 2000)
    assert state.live_broker_ids(T0 + 2000) == [1, 2, 3]
    assert state.placeable_broker_ids(T0 + 2000) == [1, 3]
    state.apply(CreateTopic("t", tid(1), 1, 1), T0 + 2000)
    for _ in range(6):
        active = state.active_segment("t", 0)
        assert active is not None
        rolled = state.apply(RollSegment("t", 0, active.epoch, active.base_offset + 1), T0 + 2000)
        assert isinstance(rolled, SegmentRolled) and rolled.new_leader != 2
    # Every lease lapsed (a Raft election): placement falls back to the live brokers.
    assert state.placeable_broker_ids(T0 + 4000) == [1, 2, 3]


def test_a_heartbeat_with_a_malformed_lease_is_refused() -> None:
    state = cluster(1)
    before = state.to_snapshot()
    assert refused(state.apply(BrokerHeartbeat(1, "soon"), T0), MetadataError.INVALID_REQUEST)  # type: ignore[arg-type]
    assert refused(state.apply(BrokerHeartbeat(1, True), T0), MetadataError.INVALID_REQUEST)  # type: ignore[arg-type]
    assert state.to_snapshot() == before


# ------------------------------------------------------- encoding, snapshots


def test_unknown_and_malformed_commands_are_refused_not_raised() -> None:
    state = cluster(1)
    assert refused(state.apply({"kind": "launch_rockets"}, T0), MetadataError.UNKNOWN_COMMAND)
    assert refused(
        state.apply({"kind": "roll_segment", "topic": "t"}, T0), MetadataError.UNKNOWN_COMMAND
    )
    assert refused(
        state.apply(RollSegment("t", "zero", 0, 1), T0), MetadataError.UNKNOWN_TOPIC_OR_PARTITION
    )  # type: ignore[arg-type]


def all_command_kinds() -> list[object]:
    return [
        RegisterBroker(1, "h", 1, "r", "h:2"),
        BrokerHeartbeat(1),
        UnregisterBroker(1),
        CreateTopic("t", tid(5), 2, 1, {"a": "b"}),
        DeleteTopic("t"),
        CreatePartitions("t", 3),
        AlterTopicConfig("t", {"a": "c"}, ["d"]),
        AlterClusterConfig({"a": "c"}, ["d"]),
        CommitOffsets("g", [OffsetEntry("t", 0, 1, 2, "m"), OffsetEntry("t", 1, 2)], 99),
        DeleteOffsets("g", [("t", 0)]),
        DeleteGroupOffsets("g"),
        ExpireOffsets(),
        AllocateProducerIds(1),
        RollSegment("t", 0, 0, 1),
        RenewLease("t", 0, 0, 1, 5),
        ReassignLeader("t", 0, 0, 1),
        UpsertScramCredential("u", "SCRAM-SHA-256", b"s", bytes(32), bytes(range(32)), 4096),
        DeleteScramCredential("u", "SCRAM-SHA-512"),
    ]


@pytest.mark.parametrize("command", all_command_kinds(), ids=lambda c: type(c).__name__)
def test_every_command_survives_a_json_round_trip(command: object) -> None:
    encoded = json.loads(json.dumps(command_to_dict(command)))  # type: ignore[arg-type]
    assert command_from_dict(encoded) == command


def random_commands(seed: int, count: int) -> list[tuple[dict[str, object], int]]:
    """A random but valid-looking command stream, as dicts (what Raft carries)."""
    rng = random.Random(seed)
    names = ["a", "b", "c"]
    out: list[tuple[dict[str, object], int]] = []
    now = T0
    for i in range(count):
        now += rng.randrange(0, 3000)
        choice = rng.randrange(12)
        node = rng.randrange(1, 5)
        name = rng.choice(names)
        part = rng.randrange(3)
        if choice == 0:
            cmd: object = RegisterBroker(node, "127.0.0.1", 9000 + node)
        elif choice == 1:
            cmd = BrokerHeartbeat(node)
        elif choice == 2:
            cmd = CreateTopic(name, tid(i + 1), rng.randrange(1, 4), rng.randrange(1, 3))
        elif choice == 3:
            cmd = DeleteTopic(name)
        elif choice == 4:
            cmd = CreatePartitions(name, rng.randrange(1, 6))
        elif choice == 5:
            cmd = CommitOffsets(f"g{node}", [OffsetEntry(name, part, rng.randrange(100))])
        elif choice == 6:
            cmd = RollSegment(name, part, rng.randrange(3), rng.randrange(0, 500))
        elif choice == 7:
            cmd = RenewLease(name, part, rng.randrange(3), node, now + 1000)
        elif choice == 8:
            cmd = AllocateProducerIds(node)
        elif choice == 9:
            cmd = ReassignLeader(name, part, rng.randrange(3), rng.randrange(0, 500))
        elif choice == 10:
            cmd = AlterTopicConfig(name, {"retention.ms": str(rng.randrange(10))})
        else:
            cmd = DeleteOffsets(f"g{node}", [(name, part)])
        out.append((command_to_dict(cmd), now))  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_two_states_fed_the_same_commands_have_equal_snapshots(seed: int) -> None:
    commands = random_commands(seed, 400)
    a, b = ClusterState(), ClusterState()
    results_a = [a.apply(dict(c), t) for c, t in commands]
    results_b = [b.apply(dict(c), t) for c, t in commands]
    assert results_a == results_b
    assert a.to_snapshot() == b.to_snapshot()
    assert a.version > 50  # the stream did real work, not only refusals


@pytest.mark.parametrize("seed", range(3))
def test_snapshot_round_trip_then_same_future(seed: int) -> None:
    """A node restored from a snapshot must continue exactly like one that replayed."""
    commands = random_commands(seed + 100, 400)
    replayed = ClusterState()
    for c, t in commands[:250]:
        replayed.apply(dict(c), t)
    restored = ClusterState.from_snapshot(replayed.to_snapshot())
    assert restored.to_snapshot() == replayed.to_snapshot()
    for c, t in commands[250:]:
        assert restored.apply(dict(c), t) == replayed.apply(dict(c), t)
    assert restored.to_snapshot() == replayed.to_snapshot()


def test_snapshot_of_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="format"):
        ClusterState.from_snapshot(b'{"format": 999}')


def test_leader_reports_the_in_sync_replicas_of_its_segment() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 3), T0)
    active = state.active_segment("t", 0)
    assert active is not None and active.in_sync == [1, 2, 3]
    assert state.apply(UpdateIsr("t", 0, 0, 1, [1, 3]), T0) == IsrUpdated("t", 0, 0, (1, 3))
    assert state.active_segment("t", 0).in_sync == [1, 3]  # type: ignore[union-attr]
    # Only the leader, only its epoch, and never without the leader or with strangers.
    assert refused(state.apply(UpdateIsr("t", 0, 0, 2, [1, 2]), T0), MetadataError.NOT_LEADER_OR_FOLLOWER)
    assert refused(state.apply(UpdateIsr("t", 0, 1, 1, [1]), T0), MetadataError.UNKNOWN_LEADER_EPOCH)
    assert refused(state.apply(UpdateIsr("t", 0, 0, 1, [2, 3]), T0), MetadataError.INVALID_REQUEST)
    assert refused(state.apply(UpdateIsr("t", 0, 0, 1, [1, 9]), T0), MetadataError.INVALID_REQUEST)
    again = ClusterState.from_snapshot(state.to_snapshot())
    assert again.active_segment("t", 0).in_sync == [1, 3]  # type: ignore[union-attr]


def test_the_first_cluster_id_proposed_is_kept() -> None:
    state = cluster(1)
    assert state.apply(SetClusterId("first"), T0) == ClusterIdSet("first")
    assert state.apply(SetClusterId("second"), T0) == ClusterIdSet("first")
    assert ClusterState.from_snapshot(state.to_snapshot()).cluster_id == "first"


def test_replicas_spread_over_racks_when_nodes_have_them() -> None:
    state = ClusterState()
    for n, rack in ((1, "a"), (2, "a"), (3, "b"), (4, "b")):
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n, rack), T0)
    state.apply(CreateTopic("t", tid(1), 4, 2), T0)
    racks = {1: "a", 2: "a", 3: "b", 4: "b"}
    for p in state.topics["t"].partitions:
        assert {racks[r] for r in p.active.replicas} == {"a", "b"}, p.active.replicas
    # Without racks, followers are the next nodes of the ring.
    plain = cluster(4)
    plain.apply(CreateTopic("t", tid(1), 1, 2), T0)
    assert plain.topics["t"].partitions[0].active.replicas == [1, 2]


def test_a_removed_follower_is_replaced_by_another_live_node() -> None:
    state = cluster(4)
    state.apply(CreateTopic("t", tid(1), 1, 3), T0)
    assert state.active_segment("t", 0).replicas == [1, 2, 3]  # type: ignore[union-attr]
    state.apply(UpdateIsr("t", 0, 0, 1, [1, 2, 3]), T0)
    state.apply(UnregisterBroker(2), T0)
    active = state.active_segment("t", 0)
    assert active is not None
    assert active.replicas == [1, 3, 4] and active.in_sync == [1, 3]
    # Its leader's removal leaves the segment to failover.
    state.apply(UnregisterBroker(1), T0)
    assert state.active_segment("t", 0).replicas == [1, 3, 4]  # type: ignore[union-attr]


# ------------------------------------------------- leases, rolls, the ISR (more)


def test_the_next_leader_comes_from_the_in_sync_replicas_even_when_busier() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 2), T0)  # leader 1, replicas 1 and 2
    state.apply(CreateTopic("busy", tid(2), 3, 1), T0)  # leaders 2, 3, 1
    state.apply(RollSegment("busy", 2, 0, 0), T0)  # node 2 now leads two, node 3 one
    # Node 3 is less loaded, but only node 2 holds the segment and its producers.
    rolled = state.apply(RollSegment("t", 0, 0, 5), T0)
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 2


def test_a_reassignment_hands_leadership_to_the_in_sync_proposer() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 3), T0)  # leader 1, replicas 1, 2, 3
    later = T0 + state.session_timeout_ms()
    state.apply(BrokerHeartbeat(2), later)
    state.apply(BrokerHeartbeat(3), later)
    rolled = state.apply(ReassignLeader("t", 0, 0, 10, proposer=3), later)
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 3
    # A proposer outside the in-sync set does not get it: a live in-sync node does.
    assert state.apply(UpdateIsr("t", 0, 1, 3, [3, 2, 3]), later) == IsrUpdated(
        "t", 0, 1, (2, 3)
    )
    end = later + state.session_timeout_ms()
    state.apply(BrokerHeartbeat(1), end)
    state.apply(BrokerHeartbeat(2), end)
    rolled = state.apply(ReassignLeader("t", 0, 1, 20, proposer=1), end)
    assert isinstance(rolled, SegmentRolled) and rolled.new_leader == 2


def test_producer_rows_travel_with_a_roll_and_a_reassignment() -> None:
    state = cluster(3)
    state.apply(CreateTopic("t", tid(1), 1, 2), T0)
    rows = [[7, 0, 100, [[0, 4, 0, 4, 100]]]]
    state.apply(RollSegment("t", 0, 0, 5, producers=rows), T0)
    assert state.producers_at("t", 0, 1, 5) == rows
    assert state.producers_at("t", 0, 1, 6) is None
    assert state.producers_at("t", 0, 0, 5) is None
    later = T0 + state.session_timeout_ms()
    state.apply(BrokerHeartbeat(1), later)
    state.apply(BrokerHeartbeat(3), later)
    more = [[7, 0, 200, [[5, 9, 5, 9, 200]]], [8, 1, 210, []]]
    rolled = state.apply(ReassignLeader("t", 0, 1, 10, producers=more), later)
    assert isinstance(rolled, SegmentRolled)
    assert state.producers_at("t", 0, 2, 10) == more
    assert state.producers_at("t", 0, 1, 5) is None  # only the active segment's are kept


def test_producers_that_are_not_a_list_refuse_the_roll() -> None:
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    result = state.apply(RollSegment("t", 0, 0, 5, producers="rows"), T0)  # type: ignore[arg-type]
    assert result == Refusal(MetadataError.INVALID_REQUEST, "producers must be a list")
    active = state.active_segment("t", 0)
    assert active is not None and active.epoch == 0
    assert isinstance(state.apply(RollSegment("t", 0, 0, 5), T0), SegmentRolled)
    assert state.producers_at("t", 0, 1, 5) == []


def test_a_sealed_segment_keeps_no_lease() -> None:
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 1, 1), T0)
    state.apply(RenewLease("t", 0, 0, 1, T0 + 500), T0)
    state.apply(RollSegment("t", 0, 0, 5), T0)
    p = state.partition("t", 0)
    assert p is not None
    sealed = p.segments[0]
    assert (sealed.lease_holder, sealed.lease_expiry_ms) == (None, 0)
    assert sealed.to_dict()["lease_holder"] is None


def test_the_next_segment_is_spread_over_racks() -> None:
    state = ClusterState()
    racks = {1: "a", 2: "a", 3: "a", 4: "b"}
    for n, rack in racks.items():
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n, rack=rack), T0)
    state.apply(CreateTopic("t", tid(1), 1, 2), T0)
    for epoch in range(4):
        rolled = state.apply(RollSegment("t", 0, epoch, epoch * 10), T0)
        assert isinstance(rolled, SegmentRolled)
        assert {racks[n] for n in rolled.replicas} == {"a", "b"}, rolled


def test_refusals_say_which_epoch_node_or_offset_was_wrong() -> None:
    state = cluster(2)
    state.apply(CreateTopic("t", tid(1), 1, 2), T0)
    state.apply(RollSegment("t", 0, 0, 100), T0)  # epoch 1, led by 2, replicas 2 and 1
    cases = [
        (RollSegment("t", 3, 1, 200),
         Refusal(MetadataError.UNKNOWN_TOPIC_OR_PARTITION, "t-3")),
        (RollSegment("t", 0, 0, 200),
         Refusal(MetadataError.FENCED_LEADER_EPOCH, "t-0: epoch 0 is sealed; active epoch is 1")),
        (RollSegment("t", 0, 4, 200),
         Refusal(MetadataError.UNKNOWN_LEADER_EPOCH, "t-0: epoch 4 is ahead of active epoch 1")),
        (RollSegment("t", 0, 1, 99),
         Refusal(MetadataError.INVALID_REQUEST,
                 "end offset 99 is below the segment's base offset 100")),
        (RenewLease("t", 0, 1, 1, T0 + 10),
         Refusal(MetadataError.NOT_LEADER_OR_FOLLOWER, "node 1 does not lead t-0 epoch 1")),
        (UpdateIsr("t", 0, 1, 2, [1]),
         Refusal(MetadataError.INVALID_REQUEST,
                 "in-sync set [1] must hold the leader and only replicas of [2, 1]")),
        (ReassignLeader("t", 0, 1, 150),
         Refusal(MetadataError.LEADER_STILL_ALIVE, "leader 2 of t-0 is alive or holds its lease")),
    ]
    for command, refusal in cases:
        assert state.apply(command, T0) == refusal
    later = T0 + state.session_timeout_ms()
    assert state.apply(RollSegment("t", 0, 1, 200), later) == Refusal(
        MetadataError.BROKER_NOT_AVAILABLE, "no live broker to lead the next segment"
    )
    assert state.active_segment("t", 7) is None
    assert state.active_segment("nope", 0) is None
