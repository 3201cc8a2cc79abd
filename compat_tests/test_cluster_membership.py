"""Changing a running cluster's members with `walrus-broker cluster ...`: a node added
to two running nodes serves clients and takes its turn leading segments; a removed
node disappears from Metadata at once and rotation no longer picks it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.clients import consume, produce, sample_messages
from compat_tests.cluster import Cluster
from compat_tests.harness import REPO_ROOT, BrokerProcess, free_port
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.compat, pytest.mark.slow]

SEGMENT_ENTRIES = 10


def _admin(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "broker.cli", "cluster", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


def _status(via: str) -> dict:
    done = _admin("status", "--via", via, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _brokers(bootstrap: str) -> set[int]:
    with RawClient(bootstrap) as raw:
        return {b.node_id for b in raw.request("Metadata", 12, {"topics": []}).brokers}


def _wait_brokers(bootstrap: str, expected: set[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _brokers(bootstrap)) != expected:
        assert time.monotonic() < deadline, f"{bootstrap} lists brokers {seen}, not {expected}"
        time.sleep(0.2)


def _leader(bootstrap: str, topic: str) -> tuple[int, int]:
    with RawClient(bootstrap) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    p = md.topics[0].partitions[0]
    return p.leader_id, p.leader_epoch


def _create(bootstrap: str, topic: str) -> None:
    with RawClient(bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": topic, "num_partitions": 1, "replication_factor": 1,
            "configs": [{"name": "segment.entries", "value": str(SEGMENT_ENTRIES)}]}],
            "timeout_ms": 10000})
    assert created.topics[0].error_code == 0, created


def _rotate(bootstrap: str, topic: str, rounds: int) -> tuple[set[int], int]:
    """Fill `rounds` segments one after the other; the leaders seen and records sent."""
    leaders = set()
    for _ in range(rounds):
        before = _leader(bootstrap, topic)
        leaders.add(before[0])
        produce("confluent-kafka", bootstrap, topic, sample_messages(SEGMENT_ENTRIES))
        deadline = time.monotonic() + 20
        while _leader(bootstrap, topic)[1] == before[1]:
            assert time.monotonic() < deadline, f"{topic} did not roll past epoch {before[1]}"
            time.sleep(0.1)
    leaders.add(_leader(bootstrap, topic)[0])
    return leaders, rounds * SEGMENT_ENTRIES


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    base = Path(tmp_path_factory.mktemp("membership"))
    with Cluster(base, 2) as c:
        _wait_brokers(c.nodes[1].bootstrap, {1, 2})
        yield c, base


def test_an_added_node_serves_leads_segments_and_a_removed_node_is_gone(
    two_nodes: tuple[Cluster, Path],
) -> None:
    cluster, base = two_nodes
    via = f"127.0.0.1:{cluster.raft_ports[1]}"
    raft3 = f"127.0.0.1:{free_port()}"

    # Through a Raft follower: the change goes to the leader and back.
    before = _status(via)
    follower = next(m for m in before["members"] if m != before["leader"])
    added = _admin("add-node", "--via", follower, f"3@{raft3}")
    assert added.returncode == 0, added.stderr
    peers = ",".join(f"{n}@127.0.0.1:{p}" for n, p in cluster.raft_ports.items())
    assert f"--peers {peers}" in added.stdout, added.stdout
    assert raft3 in _status(via)["members"]

    node3 = BrokerProcess(base / "node3", extra_args=[
        "--node-id", "3", "--raft", raft3, "--peers", peers])
    node3.start(timeout=60)
    try:
        for node in (cluster.nodes[1], cluster.nodes[2], node3):
            _wait_brokers(node.bootstrap, {1, 2, 3})
        status = _status(f"127.0.0.1:{cluster.raft_ports[2]}")
        assert len(status["members"]) == 3 and status["leader"] in status["members"]
        assert {b["node_id"]: b["raft_address"] for b in status["brokers"]}[3] == raft3

        _create(node3.bootstrap, "grown")
        leaders, sent = _rotate(cluster.nodes[1].bootstrap, "grown", 4)
        assert leaders == {1, 2, 3}, f"the new node should take its turn, leaders {leaders}"
        got = consume("kafka-python", node3.bootstrap, "grown", sent)
        assert [c.offset for c in got] == list(range(sent))

        # Removing through the member being removed is refused, not half done.
        refused = _admin("remove-node", "--via", raft3, "3")
        assert refused.returncode == 1 and "another member" in refused.stderr, refused
        assert len(_status(via)["members"]) == 3

        removed = _admin("remove-node", "--via", via, "3")
        assert removed.returncode == 0, removed.stderr
        assert "unregistered broker 3" in removed.stdout
        # Unregistered at once, not after the 9 s session timeout; and node 3, cut
        # off from the Raft group, cannot register itself again.
        assert _brokers(cluster.nodes[1].bootstrap) == {1, 2}
        time.sleep(4)
        for node in cluster.nodes.values():
            assert _brokers(node.bootstrap) == {1, 2}
        status = _status(via)
        assert sorted(status["members"]) == sorted(
            f"127.0.0.1:{p}" for p in cluster.raft_ports.values())
        assert {b["node_id"] for b in status["brokers"]} == {1, 2}
    finally:
        node3.stop()

    _create(cluster.nodes[2].bootstrap, "shrunk")
    leaders, sent = _rotate(cluster.nodes[2].bootstrap, "shrunk", 3)
    assert leaders == {1, 2}, f"rotation must skip the removed node, leaders {leaders}"
    got = consume("confluent-kafka", cluster.nodes[1].bootstrap, "shrunk", sent)
    assert [c.offset for c in got] == list(range(sent))


def test_membership_commands_refuse_what_they_cannot_do(two_nodes: tuple[Cluster, Path]) -> None:
    cluster, _ = two_nodes
    via = f"127.0.0.1:{cluster.raft_ports[1]}"
    taken = _admin("add-node", "--via", via, f"2@127.0.0.1:{free_port()}")
    assert taken.returncode == 1 and "node id 2 is registered" in taken.stderr, taken
    unknown = _admin("remove-node", "--via", via, "9")
    assert unknown.returncode == 1 and "not registered" in unknown.stderr, unknown
    nobody = _admin("status", "--via", f"127.0.0.1:{free_port()}", "--timeout", "3")
    assert nobody.returncode == 1 and "no answer from the Raft port" in nobody.stderr, nobody
    kafka_port = _admin("status", "--via", cluster.nodes[1].bootstrap, "--timeout", "3")
    assert kafka_port.returncode == 1 and "no answer" in kafka_port.stderr, kafka_port
    assert len(_status(via)["members"]) == 2


def test_removing_the_raft_leader_hands_leadership_over_first(tmp_path: Path) -> None:
    # pysyncobj never lets a leader remove itself; remove-node moves leadership first.
    with Cluster(tmp_path, 3) as c:
        _wait_brokers(c.nodes[1].bootstrap, {1, 2, 3})
        first = f"127.0.0.1:{c.raft_ports[1]}"
        status = _status(first)
        leader = next(b for b in status["brokers"] if b["raft_address"] == status["leader"])
        gone = leader["node_id"]
        via = next(n for n in c.nodes if n != gone)
        via_address = f"127.0.0.1:{c.raft_ports[via]}"
        removed = _admin("remove-node", "--via", via_address, str(gone))
        assert removed.returncode == 0, removed.stderr + "".join(
            f"\n--- node {n}\n{node.log_tail(40)}" for n, node in c.nodes.items())
        assert "removed" in removed.stdout
        after = _status(via_address)
        assert status["leader"] not in after["members"] and len(after["members"]) == 2
        assert gone not in {b["node_id"] for b in after["brokers"]}
        deadline = time.monotonic() + 15
        while after["leader"] not in after["members"]:  # an election may still be on
            assert time.monotonic() < deadline, after
            time.sleep(0.2)
            after = _status(via_address)
        c.nodes[gone].kill()
        _wait_brokers(c.nodes[via].bootstrap, {n for n in c.nodes if n != gone})
