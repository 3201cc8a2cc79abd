"""A partition whose leader's node lease has run out is told without a leader
(handlers/told_brokers.py): that leader writes nothing until it renews, a follower may
be taking the partition over, and a client told "no leader" looks at the metadata again
soon instead of retrying a leader it cannot reach."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import BrokerHeartbeat, RegisterBroker
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

OTHER = 2
TOPIC = "unleased"
LEASE_MS = 400


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _partitions(runner: NodeRunner) -> dict[int, tuple[int, int]]:
    md = runner.call("Metadata", 12, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False,
                                      "include_topic_authorized_operations": False})
    assert OTHER in {b.node_id for b in md.brokers}, "the other broker is alive: it is listed"
    return {p.partition_index: (p.leader_id, p.error_code) for p in md.topics[0].partitions}


def _other_leads(runner: NodeRunner, leaders: list[int]) -> None:
    """Register the other broker with a node lease of LEASE_MS it never renews, and create
    TOPIC with one partition led by each of `leaders`."""
    node = runner.node
    runner.run(node.propose(RegisterBroker(OTHER, "127.0.0.1", 49093)))
    runner.run(node.propose(BrokerHeartbeat(OTHER, _now_ms() + LEASE_MS)))
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": TOPIC, "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": i, "broker_ids": [leader]}
                        for i, leader in enumerate(leaders)]}],
        "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE, created


def test_a_leader_whose_node_lease_ran_out_is_not_told_until_it_renews(tmp_path: Path) -> None:
    runner = NodeRunner(tmp_path / "data")
    try:
        node = runner.node
        _other_leads(runner, [node.node_id, OTHER])
        assert _partitions(runner)[1] == (OTHER, ErrorCode.NONE)

        time.sleep(LEASE_MS / 1000 + 0.1)  # still alive by the 9 s session timeout
        told = _partitions(runner)
        assert told[1] == (-1, ErrorCode.LEADER_NOT_AVAILABLE)
        assert told[0] == (node.node_id, ErrorCode.NONE), "this node renews its own lease"

        runner.run(node.propose(BrokerHeartbeat(OTHER, _now_ms() + 10_000)))
        assert _partitions(runner)[1] == (OTHER, ErrorCode.NONE)
    finally:
        runner.close()


def test_a_lapse_seen_right_after_a_metadata_stall_is_not_told(tmp_path: Path) -> None:
    """While nothing commits (an election, a stalled Raft leader) no node can renew its
    lease: lapses seen then say nothing about who is gone, and telling no leaders would
    fail requests that a moment later find every leader renewed. The stall here: the
    Raft member cannot apply while the test holds its state."""
    runner = NodeRunner(tmp_path / "data")
    try:
        node = runner.node
        _other_leads(runner, [OTHER])
        time.sleep(LEASE_MS / 1000 + 0.2)
        assert _partitions(runner)[0] == (-1, ErrorCode.LEADER_NOT_AVAILABLE), "a lapse in calm"

        assert node.raft is not None
        with node.raft.reading():
            time.sleep(1.0)  # no entry reaches the node's loop meanwhile
        assert _partitions(runner)[0] == (OTHER, ErrorCode.NONE), "a lapse seen just after a stall"
        deadline = time.monotonic() + 5
        while _partitions(runner)[0] != (-1, ErrorCode.LEADER_NOT_AVAILABLE):
            assert time.monotonic() < deadline, "once entries flowed a while, the lapse is told again"
            time.sleep(0.05)
    finally:
        runner.close()
