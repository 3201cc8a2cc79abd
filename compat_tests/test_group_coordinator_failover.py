"""A group outlives its coordinator: kill -9 of the node coordinating an auto-committing
confluent-kafka consumer's group, then its return.

The group's generation, members and assignments are in the Raft metadata. The node
that takes the group over resumes them, and so does the killed node when the group
moves back to it. So the consumer is never made to rebalance (one assignment, no
revocation), its commits go on being accepted by each coordinator in turn, and no
record is delivered twice. Before membership was stored, every record consumed
between the kill and the consumer's rejoin came again after it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from broker.protocol.errors import ErrorCode
from compat_tests.clients import close_consumer
from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(180)]

TOPIC = "coordinator-failover"
GROUP = "coordinator-failover-readers"
PARTITIONS = 3
PER_PARTITION = 2000
# A node whose heartbeats stop counts as dead this long after the last one; then its
# groups move (the default is 9 s: docs/operations.md, "Timing settings").
SESSION_TIMEOUT_MS = 2000
MOVE_WITHIN_S = 15.0
# Slow enough that the consumer is still reading when the group has moved twice.
POLL_PAUSE_S = 0.004


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    env = {"WALRUS_GROUP_INITIAL_REBALANCE_DELAY_MS": "100",
           "WALRUS_BROKER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    with Cluster(tmp_path, 3, env=env) as c:
        c.wait_for_brokers(3)
        yield c


class Reader(threading.Thread):
    """One auto-committing consumer, reading slowly, recording every delivery and
    every assignment change."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(name="reader", daemon=True)
        self.deliveries: Counter[tuple[int, int]] = Counter()
        self.assigned: list[list[int]] = []
        self.revoked: list[list[int]] = []
        self.errors: list[str] = []
        self._halt = threading.Event()
        self.consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 300,
            # Long enough that the client itself never gives up on the group while its
            # coordinator moves: any rebalance seen is the broker's doing.
            "session.timeout.ms": 30000,
            "heartbeat.interval.ms": 500,
            "log_level": 0,
        })
        self.consumer.subscribe(
            [TOPIC],
            on_assign=lambda _c, parts: self.assigned.append(sorted(p.partition for p in parts)),
            on_revoke=lambda _c, parts: self.revoked.append(sorted(p.partition for p in parts)),
        )

    @property
    def delivered(self) -> int:
        return sum(self.deliveries.values())

    def run(self) -> None:
        while not self._halt.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is None:
                self.deliveries[(msg.partition(), msg.offset())] += 1
                time.sleep(POLL_PAUSE_S)
            elif not msg.error().retriable():
                self.errors.append(str(msg.error()))

    def positions(self) -> dict[int, int]:
        return {p.partition: p.offset for p in self.consumer.position(
            [confluent_kafka.TopicPartition(TOPIC, p) for p in range(PARTITIONS)])}

    def finish(self) -> None:
        self._halt.set()
        self.join(10)


def _coordinator(cluster: Cluster, via: int) -> int:
    with RawClient(cluster.nodes[via].bootstrap) as raw:
        answer = raw.request("FindCoordinator", 4, {"key_type": 0, "coordinator_keys": [GROUP]})
    (found,) = answer.coordinators
    return int(found.node_id) if found.error_code == ErrorCode.NONE else -1


def _wait_for_coordinator(cluster: Cluster, via: int, wanted: object, within: float) -> float:
    """Seconds until `wanted(node id)` holds for the coordinator `via` names."""
    started = time.monotonic()
    while not wanted(_coordinator(cluster, via)):  # type: ignore[operator]
        assert time.monotonic() < started + within, f"coordinator still {_coordinator(cluster, via)}"
        time.sleep(0.1)
    return time.monotonic() - started


def _wait_until(reader: Reader, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while reader.delivered < count:
        assert time.monotonic() < deadline, f"only {reader.delivered} of {count} records read"
        assert not reader.errors, reader.errors[:5]
        time.sleep(0.05)


def _committed(cluster: Cluster) -> dict[int, int]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": GROUP})
    try:
        parts = consumer.committed(
            [confluent_kafka.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
        return {p.partition: p.offset for p in parts}
    finally:
        close_consumer(consumer)


def test_a_group_resumes_on_each_new_coordinator_without_a_rebalance(cluster: Cluster) -> None:
    with RawClient(cluster.nodes[1].bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 1}], "timeout_ms": 10000})
    assert created.topics[0].error_code == 0, created
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5})
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(TOPIC, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(30) == 0

    victim = _coordinator(cluster, 1)
    assert victim in cluster.nodes, victim
    survivor = next(n for n in cluster.nodes if n != victim)
    reader = Reader(cluster.bootstrap)
    reader.start()
    try:
        _wait_until(reader, 300, within=30)
        time.sleep(1)  # a commit or two under the first coordinator
        assert len(reader.assigned) == 1, reader.assigned

        cluster.nodes[victim].kill()
        at_kill = reader.delivered
        moved = _wait_for_coordinator(cluster, survivor, lambda n: n not in (victim, -1), MOVE_WITHIN_S)
        print(f"group moved off node {victim} {moved:.1f}s after the kill")
        _wait_until(reader, at_kill + 600, within=30)

        cluster.nodes[victim].start(timeout=60)
        back = _wait_for_coordinator(cluster, survivor, lambda n: n == victim, MOVE_WITHIN_S)
        print(f"group back on node {victim} {back:.1f}s after its restart")
        at_return = reader.delivered
        _wait_until(reader, at_return + 600, within=30)
        time.sleep(1)  # commits under the returned coordinator
    finally:
        reader.finish()
    try:
        positions = reader.positions()
        twice = {k: n for k, n in reader.deliveries.items() if n > 1}
        print(f"read {reader.delivered} records; assigned {reader.assigned}, revoked {reader.revoked}; "
              f"{len(twice)} delivered more than once")
        assert not reader.errors, reader.errors[:5]
        assert reader.assigned == [list(range(PARTITIONS))] and reader.revoked == [], (
            "the consumer was made to rebalance", reader.assigned, reader.revoked)
        assert not twice, sorted(twice)[:10]
        reader.consumer.commit(asynchronous=False)
    finally:
        close_consumer(reader.consumer)
    # Every coordinator in turn accepted the member's commits.
    assert _committed(cluster) == positions
