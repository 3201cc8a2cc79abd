"""Groups in a two-node cluster: every node names the same coordinator for a group,
the other node turns the group's requests away with NOT_COORDINATOR, and consumers
bootstrapped on either node find the coordinator and commit through it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import kafka
import pytest

from broker.protocol.errors import ErrorCode
from compat_tests.harness import BrokerProcess, free_port
from compat_tests.raw_client import RawClient
from compat_tests.test_groups_support import GROUP_ENV, create_topic, wait_for

pytestmark = pytest.mark.compat

GROUPS = [f"cluster-group-{i}" for i in range(8)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[BrokerProcess]]:
    raft_ports = {1: free_port(), 2: free_port()}
    nodes = [
        BrokerProcess(
            tmp_path / f"node{n}",
            env=GROUP_ENV,
            extra_args=[
                "--node-id", str(n), "--raft", f"127.0.0.1:{raft_ports[n]}",
                "--peers", ",".join(f"{o}@127.0.0.1:{p}" for o, p in raft_ports.items() if o != n),
            ],
        )
        for n in (1, 2)
    ]
    # Each waits for the other to form the Raft group before it listens.
    starters = [threading.Thread(target=node.start) for node in nodes]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _coordinators(node: BrokerProcess) -> dict[str, int]:
    with RawClient(node.bootstrap) as raw:
        answer = raw.request("FindCoordinator", 4, {"key_type": 0, "coordinator_keys": GROUPS})
    assert all(c.error_code == ErrorCode.NONE for c in answer.coordinators)
    return {c.key: c.node_id for c in answer.coordinators}


def test_nodes_agree_on_each_groups_coordinator_and_others_refuse(cluster: list[BrokerProcess]) -> None:
    # Both brokers must have registered before the hash spans them.
    wait_for(lambda: set(_coordinators(cluster[0]).values()) == {1, 2}, "groups spread over both nodes")
    chosen = _coordinators(cluster[0])
    assert _coordinators(cluster[1]) == chosen
    for node_id, node in enumerate(cluster, start=1):
        with RawClient(node.bootstrap) as raw:
            for group in GROUPS:
                beat = raw.request("Heartbeat", 0, {"group_id": group, "generation_id": 1, "member_id": "m"})
                expected = ErrorCode.UNKNOWN_MEMBER_ID if chosen[group] == node_id else ErrorCode.NOT_COORDINATOR
                assert beat.error_code == expected, f"{group} on node {node_id}"


def test_consumers_on_either_node_commit_through_the_coordinator(cluster: list[BrokerProcess]) -> None:
    wait_for(lambda: set(_coordinators(cluster[0]).values()) == {1, 2}, "groups spread over both nodes")
    chosen = _coordinators(cluster[0])
    topic = "cluster-topic"
    create_topic(cluster[0].bootstrap, topic, 2)
    producer = kafka.KafkaProducer(bootstrap_servers=cluster[0].bootstrap)
    for i in range(20):
        producer.send(topic, f"{i}".encode(), partition=i % 2)
    producer.flush()
    producer.close()
    # One group coordinated by each node, each reached through the other node.
    picks = [next(g for g in GROUPS if chosen[g] == n) for n in (1, 2)]
    admin = kafka.KafkaAdminClient(bootstrap_servers=cluster[0].bootstrap)
    try:
        for group, bootstrap_node in zip(picks, reversed(cluster), strict=True):
            consumer = kafka.KafkaConsumer(
                topic, bootstrap_servers=bootstrap_node.bootstrap, group_id=group,
                auto_offset_reset="earliest", enable_auto_commit=False,
                session_timeout_ms=4000, heartbeat_interval_ms=250,
            )
            consumed = 0
            deadline = time.monotonic() + 20
            while consumed < 20 and time.monotonic() < deadline:
                consumed += sum(len(r) for r in consumer.poll(200).values())
            consumer.commit()
            consumer.close(autocommit=False)
            assert consumed == 20
            committed = admin.list_group_offsets({group: None})[group]
            assert {tp.partition: om.offset for tp, om in committed.items()} == {0: 10, 1: 10}
        listed = {g["group_id"] for g in admin.list_groups()}
        assert set(picks) <= listed
    finally:
        admin.close()
