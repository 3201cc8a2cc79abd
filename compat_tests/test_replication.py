"""Replicated segments: acks=all waits for the in-sync replicas, and a partition whose
leader dies keeps every acknowledged record and takes writes again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from broker.protocol.errors import ErrorCode
from compat_tests.clients import close_consumer
from compat_tests.cluster import Cluster
from compat_tests.harness import REPO_ROOT
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.compat, pytest.mark.fault, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, 3) as c:
        _wait(lambda: len(_metadata(c, 1, []).brokers) == 3, "all brokers registered")
        yield c


def _wait(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _metadata(cluster: Cluster, node: int, topics: list[str] | None):  # type: ignore[no-untyped-def]
    with RawClient(cluster.nodes[node].bootstrap) as raw:
        return raw.request("Metadata", 12, {
            "topics": None if topics is None else [{"name": t} for t in topics]})


def _create(cluster: Cluster, topic: str, partitions: int, rf: int, min_isr: int,
            **configs: str) -> None:
    entries = [{"name": "min.insync.replicas", "value": str(min_isr)}]
    entries += [{"name": k.replace("_", "."), "value": v} for k, v in configs.items()]
    with RawClient(cluster.nodes[1].bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": topic, "num_partitions": partitions, "replication_factor": rf,
            "configs": entries}], "timeout_ms": 10000})
    assert created.topics[0].error_code == ErrorCode.NONE, created


def _produce_all(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    """Idempotent acks=all producer; returns the values acknowledged."""
    acked: list[bytes] = []
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
        "linger.ms": 2, "message.timeout.ms": 60000,
    })

    def on_delivery(err: object, msg: confluent_kafka.Message) -> None:
        if err is None:
            acked.append(msg.value())

    for value in values:
        producer.produce(topic, value, partition=0, on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(90)
    return acked


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes]]:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            if msg.error() is None:
                got.append((msg.offset(), msg.value()))
    close_consumer(consumer)
    return got


def test_in_sync_replicas_show_in_metadata_and_acks_all_is_replicated(cluster: Cluster) -> None:
    _create(cluster, "replicated", 1, 3, 2)
    _wait(lambda: sorted(_metadata(cluster, 2, ["replicated"]).topics[0].partitions[0].isr_nodes) == [1, 2, 3],
          "three in-sync replicas")
    values = [f"r-{i}".encode() for i in range(300)]
    acked = _produce_all(cluster.nodes[1].bootstrap, "replicated", values)
    assert sorted(acked) == sorted(values)
    got = _consume_all(cluster.nodes[3].bootstrap, "replicated", len(values))
    assert [v for _, v in got] == values
    assert [o for o, _ in got] == list(range(len(values)))


def test_leader_kill_9_loses_no_acknowledged_record_and_writes_resume(cluster: Cluster) -> None:
    _create(cluster, "failover", 1, 3, 2, segment_entries="150")
    _wait(lambda: len(_metadata(cluster, 1, ["failover"]).topics[0].partitions[0].isr_nodes) == 3,
          "three in-sync replicas")
    before = [f"before-{i}".encode() for i in range(200)]
    acked = _produce_all(cluster.nodes[1].bootstrap, "failover", before)
    assert sorted(acked) == sorted(before)

    # A topic nobody has written: its partitions that the same node leads move too.
    _create(cluster, "failover-idle", 3, 3, 2)
    _wait(lambda: all(len(p.isr_nodes) == 3 for p in _metadata(cluster, 1, ["failover-idle"]).topics[0].partitions),
          "three in-sync replicas of the idle topic")
    leader = _metadata(cluster, 1, ["failover"]).topics[0].partitions[0].leader_id
    survivor = next(n for n in cluster.nodes if n != leader)
    idle_led = [p.partition_index for p in _metadata(cluster, 1, ["failover-idle"]).topics[0].partitions
                if p.leader_id == leader]
    killed_at = time.monotonic()
    cluster.nodes[leader].kill()

    def new_leader() -> bool:
        p = _metadata(cluster, survivor, ["failover"]).topics[0].partitions[0]
        idle = _metadata(cluster, survivor, ["failover-idle"]).topics[0].partitions
        return p.leader_id not in (leader, -1) and all(idle[i].leader_id not in (leader, -1) for i in idle_led)

    _wait(new_leader, f"a new leader (idle partitions it led: {idle_led})", timeout=60)
    after = [f"after-{i}".encode() for i in range(100)]
    acked_after = _produce_all(cluster.nodes[survivor].bootstrap, "failover", after)
    print(f"writes resumed {time.monotonic() - killed_at:.1f}s after kill -9 of node {leader}, "
          f"which also led idle partitions {idle_led}")
    assert sorted(acked_after) == sorted(after)

    got = _consume_all(cluster.nodes[survivor].bootstrap, "failover", len(before) + len(after))
    values = [v for _, v in got]
    lost = set(acked + acked_after) - set(values)
    duplicated = len(values) - len(set(values))
    print(f"lost={len(lost)} duplicated={duplicated}")
    assert not lost and duplicated == 0
    assert [o for o, _ in got] == sorted(o for o, _ in got)

    # The old leader comes back, cuts whatever it alone had, and is given replicas
    # again when the next segments are placed.
    cluster.nodes[leader].start(timeout=60)
    _wait(lambda: len(_metadata(cluster, survivor, []).brokers) == 3, "the old leader registered")
    more = [f"later-{i}".encode() for i in range(400)]
    assert sorted(_produce_all(cluster.nodes[survivor].bootstrap, "failover", more)) == sorted(more)
    _wait(lambda: leader in _metadata(cluster, survivor, ["failover"]).topics[0].partitions[0].isr_nodes,
          "the old leader back in sync", timeout=60)
    everything = _consume_all(cluster.nodes[leader].bootstrap, "failover", len(values) + len(more))
    assert [v for _, v in everything] == values + more


def test_consumers_read_from_an_in_sync_replica_in_their_rack(tmp_path: Path) -> None:
    """KIP-392: the leader names a follower in the consumer's rack; the follower serves."""
    racks = {1: "rack-a", 2: "rack-b", 3: "rack-c"}
    with Cluster(tmp_path, 3, node_args={n: ["--rack", r] for n, r in racks.items()}) as c:
        _wait(lambda: len(_metadata(c, 1, []).brokers) == 3, "all brokers registered")
        _create(c, "racked", 1, 3, 1)
        _wait(lambda: len(_metadata(c, 1, ["racked"]).topics[0].partitions[0].isr_nodes) == 3,
              "three in-sync replicas")
        values = [f"v{i}".encode() for i in range(50)]
        assert sorted(_produce_all(c.nodes[1].bootstrap, "racked", values)) == sorted(values)
        leader = _metadata(c, 1, ["racked"]).topics[0].partitions[0].leader_id
        follower = next(n for n in racks if n != leader)
        fetch = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                 "isolation_level": 0, "session_id": 0, "session_epoch": -1, "rack_id": racks[follower],
                 "topics": [{"topic": "racked", "partitions": [
                     {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]}
        with RawClient(c.nodes[leader].bootstrap) as raw:
            answer = raw.request("Fetch", 11, fetch).responses[0].partitions[0]
        assert answer.preferred_read_replica == follower and not answer.records
        def follower_serves() -> bool:
            with RawClient(c.nodes[follower].bootstrap) as raw:
                served = raw.request("Fetch", 11, fetch).responses[0].partitions[0]
            return served.error_code == ErrorCode.NONE and len(served.records) > 0

        # The follower learns the high watermark from its next fetch.
        _wait(follower_serves, "the follower to serve what is committed", timeout=5)
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": c.nodes[1].bootstrap, "group.id": "racked",
            "client.rack": racks[follower], "auto.offset.reset": "earliest"})
        consumer.assign([confluent_kafka.TopicPartition("racked", 0, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < len(values) and time.monotonic() < deadline:
            got += [m.value() for m in consumer.consume(100, 0.5) if m.error() is None]
        close_consumer(consumer)
        assert got == values


def test_a_removed_follower_is_replaced_and_the_new_replica_catches_up(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4) as c:
        _wait(lambda: len(_metadata(c, 1, []).brokers) == 4, "all brokers registered")
        _create(c, "moved", 1, 3, 2)
        part = _metadata(c, 1, ["moved"]).topics[0].partitions[0]
        _wait(lambda: len(_metadata(c, 1, ["moved"]).topics[0].partitions[0].isr_nodes) == 3, "in sync")
        values = [f"m{i}".encode() for i in range(200)]
        assert sorted(_produce_all(c.nodes[part.leader_id].bootstrap, "moved", values)) == sorted(values)
        gone = next(r for r in part.replica_nodes if r != part.leader_id)
        spare = next(n for n in c.nodes if n not in part.replica_nodes)
        via = next(n for n in c.nodes if n != gone)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        removed = subprocess.run(
            [sys.executable, "-m", "broker.cli", "cluster", "remove-node",
             "--via", f"127.0.0.1:{c.raft_ports[via]}", str(gone)],
            capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT)
        assert removed.returncode == 0, removed.stderr
        c.nodes[gone].kill()

        def back_to_three() -> bool:
            p = _metadata(c, via, ["moved"]).topics[0].partitions[0]
            return sorted(p.replica_nodes) == sorted({*part.replica_nodes} - {gone} | {spare}) \
                and sorted(p.isr_nodes) == sorted(p.replica_nodes)

        _wait(back_to_three, "the replacement replica in sync", timeout=30)
        # The replacement holds the whole active segment, copied from its base.
        fetch = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                 "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                 "topics": [{"topic": "moved", "partitions": [
                     {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]}

        def spare_serves_everything() -> bool:
            with RawClient(c.nodes[spare].bootstrap) as raw:
                p = raw.request("Fetch", 11, fetch).responses[0].partitions[0]
            return p.error_code == 0 and p.high_watermark == len(values) and len(p.records) > 0

        _wait(spare_serves_everything, "the replacement to serve the segment", timeout=10)
