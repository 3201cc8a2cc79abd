"""What a node tells clients while its own metadata lags the cluster's.

A real in-process node stops heartbeating and the cluster's session timeout is made
short, so its own last applied heartbeat expires, as on a node cut off from the Raft
majority or catching up after a partition heals. A second registered broker never
heartbeats either. Every broker in the view is then "not alive"; clients must still be
told the registered brokers and the leaders last known, never an empty cluster. Once
the node heartbeats again its view is current, and the usual liveness rule is back.
"""

from __future__ import annotations

import time

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import AlterClusterConfig, RegisterBroker, UnregisterBroker
from broker.handlers.groups_coordinator import coordinates
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

OTHER = 2
OTHER_PORT = 49092
SESSION_TIMEOUT_MS = 1500
TOPIC = "stale-view"
GROUPS = [f"group-{i}" for i in range(24)]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _live(runner: NodeRunner) -> list[int]:
    with runner.node.metadata() as state:
        return state.live_broker_ids(_now_ms())


def _metadata(runner: NodeRunner) -> tuple[list[tuple[int, str, int]], dict[int, tuple[int, int]]]:
    """(brokers as (id, host, port), partition -> (leader, error code))."""
    md = runner.call("Metadata", 12, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False,
                                      "include_topic_authorized_operations": False})
    brokers = sorted((b.node_id, b.host, b.port) for b in md.brokers)
    return brokers, {p.partition_index: (p.leader_id, p.error_code) for p in md.topics[0].partitions}


def _described_brokers(runner: NodeRunner) -> list[int]:
    answer = runner.call("DescribeCluster", 1, {"include_cluster_authorized_operations": False,
                                                "endpoint_type": 1})
    assert answer.error_code == ErrorCode.NONE
    return sorted(b.broker_id for b in answer.brokers)


def _coordinators(runner: NodeRunner) -> dict[str, tuple[int, int]]:
    """group -> (coordinator id, error code) as FindCoordinator answers it."""
    answer = runner.call("FindCoordinator", 4, {"key_type": 0, "coordinator_keys": GROUPS})
    return {c.key: (c.node_id, c.error_code) for c in answer.coordinators}


def _setup(runner: NodeRunner) -> dict[int, int]:
    """Stop this node's heartbeats, register a second broker and place a partition on
    each; the node id leading each partition."""
    node = runner.node
    assert node.heartbeats is not None
    runner.run(node.heartbeats.stop())
    runner.run(node.propose(RegisterBroker(OTHER, "127.0.0.1", OTHER_PORT)))
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": TOPIC, "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": 0, "broker_ids": [node.node_id]},
                        {"partition_index": 1, "broker_ids": [OTHER]}]}],
        "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE, created
    return {0: node.node_id, 1: OTHER}


def _let_every_heartbeat_expire(runner: NodeRunner) -> None:
    runner.run(runner.node.propose(AlterClusterConfig({"broker.session.timeout.ms": str(SESSION_TIMEOUT_MS)})))
    deadline = time.monotonic() + 10
    while _live(runner):
        assert time.monotonic() < deadline, f"heartbeats still counted alive: {_live(runner)}"
        time.sleep(0.05)


def test_a_node_whose_own_heartbeat_expired_still_lists_the_registered_brokers(runner: NodeRunner) -> None:
    me = runner.node.node_id
    my_host, my_port = runner.node.config.advertised
    leaders = _setup(runner)
    _let_every_heartbeat_expire(runner)

    brokers, partitions = _metadata(runner)
    assert brokers == [(me, my_host, my_port), (OTHER, "127.0.0.1", OTHER_PORT)]
    # The other broker's partition keeps its last-known leader; this node's own is
    # leaderless: the cluster has counted it dead long enough for that to have moved.
    assert partitions[1] == (leaders[1], ErrorCode.NONE)
    assert partitions[0] == (-1, ErrorCode.LEADER_NOT_AVAILABLE)
    assert _described_brokers(runner) == [me, OTHER]

    found = _coordinators(runner)
    named = {group: node_id for group, (node_id, code) in found.items() if code == ErrorCode.NONE}
    refused = {group for group, (_, code) in found.items() if code == ErrorCode.COORDINATOR_NOT_AVAILABLE}
    assert set(named) | refused == set(GROUPS), found
    # Hashed over both registered brokers: the other one is named, this one never (it
    # serves no group until its heartbeat is applied again).
    assert named and refused and set(named.values()) == {OTHER}, found
    # Serving decisions still go by liveness alone.
    assert not any(coordinates(runner.node, group) for group in GROUPS)

    # Unregistered behind its back, it still names itself.
    runner.run(runner.node.propose(UnregisterBroker(me)))
    assert [b[0] for b in _metadata(runner)[0]] == [me, OTHER]
    assert _described_brokers(runner) == [me, OTHER]


def test_once_its_own_heartbeat_is_applied_only_live_brokers_are_listed(runner: NodeRunner) -> None:
    me = runner.node.node_id
    leaders = _setup(runner)
    _let_every_heartbeat_expire(runner)
    assert runner.node.heartbeats is not None
    # Registers again, then beats every third of the (short) session timeout.
    runner.run(runner.node.heartbeats.start())
    assert _live(runner) == [me]

    brokers, partitions = _metadata(runner)
    assert [b[0] for b in brokers] == [me]
    assert partitions[0] == (leaders[0], ErrorCode.NONE)
    assert partitions[1] == (-1, ErrorCode.LEADER_NOT_AVAILABLE)
    assert _described_brokers(runner) == [me]
    assert set(_coordinators(runner).values()) == {(me, ErrorCode.NONE)}
    assert all(coordinates(runner.node, group) for group in GROUPS)
