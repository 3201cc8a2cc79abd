"""Failover with node leases (`node_leases`, docs/operations.md "Timing settings").

Every heartbeat renews a lease on all the segments its node leads; once a dead leader's
node lease has lapsed an in-sync follower takes its segments over, without waiting out
the 9 s session timeout. Three nodes, one partition with three replicas and
min.insync.replicas=2, an idempotent acks=all producer; the leader gets kill -9 twice
(restarted in between). Each time the metadata must name a new leader within a few
leases, the producer must write again soon after, and the read-back must find every
acknowledged record exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_faults_workload import ProducerLoad, check, read_everything

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(180)]

LEASE_MS = 1500
TIMINGS = {
    "WALRUS_NODE_LEASES": "true", "WALRUS_LEASE_MS": str(LEASE_MS),
    "WALRUS_BROKER_HEARTBEAT_INTERVAL_MS": "400", "WALRUS_LEASE_RENEW_INTERVAL_MS": "400",
    "WALRUS_LEASE_SAFETY_MARGIN_MS": "300", "WALRUS_FAILOVER_CHECK_INTERVAL_MS": "100",
}
TOPIC = "node-lease-failover"
# The lease, a check, a Raft round and, when the dead node led Raft too, an election
# and two heartbeats of settling: measured 1.2-2.8 s here. The bound leaves room for a
# loaded machine and is still far below the 9 s session timeout it replaces.
NEW_LEADER_WITHIN_S = 6.0
# Then librdkafka's next look at a partition without a reachable leader (once a second),
# and its connection to the new leader: when that node is the one restarted in the
# round before, the client's reconnect backoff has grown meanwhile (up to its 10 s
# reconnect.backoff.max.ms; 4.2 s seen).
WRITES_AGAIN_WITHIN_S = NEW_LEADER_WITHIN_S + 12.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, 3, env=TIMINGS) as c:
        c.wait_for_brokers(3)
        yield c


def _state(bootstrap: str) -> tuple[int, list[int]]:
    with RawClient(bootstrap) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": TOPIC}]})
    p = md.topics[0].partitions[0]
    return int(p.leader_id), sorted(p.isr_nodes)


def _wait(what: str, within: float, ready: object) -> float:
    started = time.monotonic()
    while not ready():  # type: ignore[operator]
        assert time.monotonic() < started + within, f"{what} not within {within}s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_killed_leader_is_replaced_within_a_few_leases_and_nothing_is_lost_or_doubled(cluster: Cluster) -> None:
    first = cluster.nodes[1].bootstrap
    with RawClient(first) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": TOPIC, "num_partitions": 1, "replication_factor": 3,
            # Rolls every ~2 s: a restarted node gets replicas again with the next
            # segment placed, and the next round starts with three copies.
            "configs": [{"name": "min.insync.replicas", "value": "2"},
                        {"name": "segment.entries", "value": "600"}]}], "timeout_ms": 10000})
    assert created.topics[0].error_code == 0, created
    _wait("three in-sync replicas", 30, lambda: len(_state(first)[1]) == 3)
    producer = ProducerLoad(cluster.bootstrap, TOPIC, 1, "w", rate=300.0)
    producer.start()
    try:
        for round_ in range(2):
            leader, _ = _state(first)
            watcher = cluster.nodes[next(n for n in cluster.nodes if n != leader)].bootstrap
            _wait("a write before the kill", 15, lambda: bool(producer.acks_after(time.monotonic() - 1)))
            cluster.nodes[leader].kill()
            killed = time.monotonic()
            moved = _wait(f"a new leader after killing node {leader}", NEW_LEADER_WITHIN_S,
                          lambda w=watcher, gone=leader: _state(w)[0] not in (gone, -1))
            written = _wait("a write acknowledged after the kill", WRITES_AGAIN_WITHIN_S - moved,
                            lambda t=killed: bool(producer.acks_after(t + 0.01)))
            print(f"round {round_}: node {leader} killed; new leader named after {moved:.2f}s, "
                  f"first write acknowledged after {moved + written:.2f}s")
            cluster.nodes[leader].start(timeout=60)
            _wait("three in-sync replicas again", 45, lambda w=watcher: len(_state(w)[1]) == 3)
    finally:
        producer.finish(60)
    assert producer.fatal_error() is None, producer.fatal_error()
    assert producer.unflushed == 0 and not producer.failures, producer.failures[:3]
    stored, highs = read_everything(first, TOPIC, 1, timeout=60)
    verdict = check(producer.acks, stored, high_watermarks=highs)
    print(verdict.summary())
    assert verdict.clean, verdict.summary()
