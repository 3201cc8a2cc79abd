"""A network partition cuts the Raft leader off from a three-node cluster whose
partitions have three replicas, while idempotent acks=all producers (confluent-kafka)
and a consumer group keep running on the majority side.

Each broker runs in a network namespace of its own (compat_tests/netns.py) and the
clients in another. Once the cut-off node's heartbeats and leases have run out, the
majority elects a new Raft leader, seals the segments the cut-off node led at the
in-sync followers' log end and writes on; every partition takes writes again on the
majority side while the node is still cut off. After healing, the returning node
truncates whatever it alone held; reading everything back through each node finds
every acknowledged record once, at the offset its producer was told, and the group has
read them all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.netns import NamespacedCluster, NetworkLab, skip_or_fail_without_namespaces
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_faults_workload import (
    GroupReader,
    ProducerLoad,
    check,
    read_everything,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(240)]

PARTITIONS = 6
# The node lease (1 s), a Raft election on the majority side, the failover check and the
# client's metadata refresh and retry.
TAKEOVER_WITHIN_S = 15.0
RECOVERY_WITHIN_S = 30.0
CATCH_UP_WITHIN_S = 20.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NamespacedCluster]:
    skip_or_fail_without_namespaces()
    with NetworkLab() as lab:
        c = NamespacedCluster(lab, tmp_path, 3)
        try:
            c.start()
            yield c
        finally:
            c.stop()


def _metadata(bootstrap: str, topic: str | None = None) -> object:
    with RawClient(bootstrap) as raw:
        return raw.request("Metadata", 12, {"topics": [] if topic is None else [{"name": topic}]})


def _cluster_view(cluster: NamespacedCluster, node: int, topic: str) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
    """(live brokers, (partition, leader, epoch) of each partition) as `node` tells it."""
    md = cluster.from_client(_metadata, cluster.nodes[node].bootstrap, topic)
    brokers = tuple(sorted(b.node_id for b in md.brokers))  # type: ignore[attr-defined]
    parts = tuple(sorted((p.partition_index, p.leader_id, p.leader_epoch)
                         for p in md.topics[0].partitions))  # type: ignore[attr-defined]
    return brokers, parts


def _setup(bootstrap: str, topic: str) -> tuple[dict[int, int], int]:
    """Wait for three brokers, create the topic with three replicas and wait until they
    are all in sync: the leader per partition, and the Raft leader."""
    deadline = time.monotonic() + 30
    while len(_metadata(bootstrap).brokers) < 3:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "brokers did not all register"
        time.sleep(0.2)
    with RawClient(bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": topic, "num_partitions": PARTITIONS, "replication_factor": 3,
            "configs": [{"name": "min.insync.replicas", "value": "2"}]}], "timeout_ms": 10000})
        assert created.topics[0].error_code == 0, created
    while True:
        md = _metadata(bootstrap, topic)
        parts = md.topics[0].partitions  # type: ignore[attr-defined]
        if all(len(p.isr_nodes) == 3 for p in parts):
            return {p.partition_index: p.leader_id for p in parts}, int(md.controller_id)  # type: ignore[attr-defined]
        assert time.monotonic() < deadline + 30, "replicas never all in sync"
        time.sleep(0.2)


def _acked(producers: list[ProducerLoad], since: float) -> set[int]:
    return {a.partition for p in producers for a in p.acks_after(since)}


def test_the_majority_writes_on_with_idempotent_producers_when_the_raft_leader_is_cut_off(
        cluster: NamespacedCluster) -> None:
    topic = "replicated-cut-controller"
    leaders, controller = cluster.from_client(_setup, cluster.nodes[1].bootstrap, topic)
    victim = controller
    cut_led = {p for p, leader in leaders.items() if leader == victim}
    survivor = next(n for n in cluster.nodes if n != victim)
    # Clients are made inside the client namespace: librdkafka's threads inherit it.
    producers = [cluster.from_client(ProducerLoad, cluster.bootstrap, topic, PARTITIONS, f"w{i}", 100.0)
                 for i in range(2)]
    group = cluster.from_client(GroupReader, cluster.bootstrap, topic, f"{topic}-readers")
    for thread in (*producers, group):
        thread.start()
    try:
        started = time.monotonic()
        while _acked(producers, started) != set(leaders):
            assert time.monotonic() < started + 20, "warm-up: not every partition took a write"
            time.sleep(0.1)

        cluster.cut(victim)
        cut = time.monotonic()
        while _acked(producers, cut + 1) != set(leaders):
            for p in producers:
                p.wait_alive()
            assert time.monotonic() < cut + TAKEOVER_WITHIN_S, (
                f"partitions {sorted(set(leaders) - _acked(producers, cut + 1))} (node {victim} led "
                f"{sorted(cut_led)}) took no write within {TAKEOVER_WITHIN_S}s of cutting off node {victim}\n"
                + cluster.nodes[survivor].log_tail(20))
            time.sleep(0.2)
        took_over = time.monotonic() - cut
        md = cluster.from_client(_metadata, cluster.nodes[survivor].bootstrap, topic)
        now_led = {p.partition_index: p.leader_id for p in md.topics[0].partitions}  # type: ignore[attr-defined]
        assert victim not in now_led.values(), now_led
        print(f"Raft leader node {victim} cut off (it led partitions {sorted(cut_led)}): every partition "
              f"took writes on the majority side {took_over:.1f}s later; leaders now {now_led}")
        time.sleep(3)

        cluster.heal(victim)
        healed = time.monotonic()
        while _acked(producers, healed) != set(leaders):
            assert time.monotonic() < healed + RECOVERY_WITHIN_S, "partitions not writable after healing"
            time.sleep(0.1)
        # The healed node catches up on what it missed before the read-back asks it: until
        # its Raft log catches up (seen: 3-5 s) it describes the cluster as it was when it
        # was cut off, with every heartbeat it knows of expired, and a client that
        # bootstraps from it then waits out its own metadata back-off.
        deadline = time.monotonic() + CATCH_UP_WITHIN_S
        while True:
            views = {n: _cluster_view(cluster, n, topic) for n in cluster.nodes}
            if len(set(views.values())) == 1 and all(len(v[0]) == len(cluster.nodes) for v in views.values()):
                break
            assert time.monotonic() < deadline, (
                f"the nodes' metadata did not converge within {CATCH_UP_WITHIN_S}s of healing: {views!r}")
            time.sleep(0.2)
        print(f"every node gives the same metadata {time.monotonic() - healed:.1f}s after healing")
    finally:
        for producer in producers:
            producer.finish(timeout=60)
    try:
        for producer in producers:
            assert producer.fatal_error() is None, producer.fatal_error()
            assert producer.unflushed == 0, f"{producer.writer}: {producer.unflushed} records never answered"
        acks = [a for p in producers for a in p.acks]
        for n in cluster.nodes:
            stored, highs = cluster.from_client(read_everything, cluster.nodes[n].bootstrap, topic, PARTITIONS,
                                                60.0, timeout=90.0)
            verdict = check(acks, stored, high_watermarks=highs)
            print(f"read back through node {n}: {verdict.summary()}")
            assert verdict.clean, (verdict.summary(), verdict.lost[:5], verdict.duplicated[:5],
                                   verdict.conflicting_offsets[:5], verdict.out_of_order[:5],
                                   verdict.offset_gaps[:5])
        wanted = {a.value for a in acks}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not wanted <= set(group.values):
            time.sleep(0.2)
        unread = wanted - set(group.values)
        print(f"group read {len(group.values)} distinct records, {len(unread)} acknowledged unread")
        assert not unread, f"the group never read {len(unread)} acknowledged records"
        assert not group.errors, group.errors[:5]
    finally:
        group.finish()
