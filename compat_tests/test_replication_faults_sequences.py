"""An idempotent producer must survive a failover to a follower that restarted with a
hole in its copy of the partition.

Node 1 holds the partition's first segment, misses the next ones while it is down past
the session timeout, and becomes an in-sync follower of a later segment that only
another producer writes. It then restarts (kill -9) while that segment is active, and
finally takes the partition over when the segment's leader is killed. The first
producer's next record must be accepted: node 1 never saw that producer's later
sequences (other nodes hold them), so it may not judge them against the sequence it
last saw before the hole. The seal hands the producer state at the new segment's base
to every replica that begins it (RollSegment / ReassignLeader carry it), so node 1's
state is complete whatever it missed, and survives its restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from broker.protocol.errors import ErrorCode
from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_faults import _batch, _produce_raw, _producer_id

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(180)]

TOPIC = "sequences-across-a-hole"
ROLL_EVERY = 40
PAST_SESSION_TIMEOUT_S = 11.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, 3) as c:
        c.wait_for_brokers(3)
        yield c


def _partition(cluster: Cluster, via: int) -> tuple[int, list[int], int]:
    """(leader, in-sync replicas, leader epoch) of the topic's only partition."""
    with RawClient(cluster.nodes[via].bootstrap) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": TOPIC}]})
    p = md.topics[0].partitions[0]
    return int(p.leader_id), sorted(p.isr_nodes), int(p.leader_epoch)


class Writer:
    """An idempotent acks=all producer that flushes each batch it writes."""

    def __init__(self, bootstrap: str, name: str) -> None:
        self.name = name
        self.sent = 0
        self.errors: list[str] = []
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 0, "message.timeout.ms": 60000, "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 0,
        })

    def _on_delivery(self, err: confluent_kafka.KafkaError | None, _msg: confluent_kafka.Message) -> None:
        if err is not None:
            self.errors.append(str(err))

    def write(self, count: int) -> None:
        for _ in range(count):
            self.producer.produce(TOPIC, value=f"{self.name}-{self.sent}".encode(), partition=0,
                                  on_delivery=self._on_delivery)
            self.sent += 1
            # One record per request, so every roll falls between two of them.
            try:
                unanswered = self.producer.flush(60)
            except (confluent_kafka.KafkaException, SystemError) as exc:
                # A fatal error surfaces from flush (librdkafka raises it around the
                # delivery callback); its cause names the broker's error.
                self.errors.append(f"{exc!r} caused by {exc.__cause__ or exc.__context__!r}")
                break
            assert unanswered == 0, f"{self.name}: record {self.sent - 1} never answered"
        assert not self.errors, f"{self.name} after {self.sent} records: {self.errors[0]}"


def _wait(check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_producer_survives_failover_to_a_follower_restarted_with_a_hole_in_its_log(cluster: Cluster) -> None:
    with RawClient(cluster.nodes[2].bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": TOPIC, "num_partitions": 1, "replication_factor": 3,
            "configs": [{"name": "min.insync.replicas", "value": "1"},
                        {"name": "segment.entries", "value": str(ROLL_EVERY)}]}], "timeout_ms": 10000})
    assert created.topics[0].error_code == 0, created
    _wait(lambda: len(_partition(cluster, 2)[1]) == 3, "three in-sync replicas")
    first = Writer(cluster.nodes[2].bootstrap, "first")
    first.write(ROLL_EVERY // 2)

    # Node 1 misses the next segments: down past the session timeout, so they are
    # placed on nodes 2 and 3 only.
    third = _producer_id(cluster)
    cluster.nodes[1].kill()
    time.sleep(PAST_SESSION_TIMEOUT_S)
    first.write(3 * ROLL_EVERY)
    # A third producer (raw requests) writes one batch there, which node 1 never holds:
    # to the partition's leader, as any client sends an idempotent producer's batch.
    code, third_offset = _produce_raw(cluster, None, TOPIC, _batch(third, 3, 0))
    assert code == ErrorCode.NONE, ErrorCode(code).name
    first.write(ROLL_EVERY)
    cluster.nodes[1].start(timeout=60)
    cluster.wait_for_brokers(3)

    # Only the second producer writes until a segment led by another node has node 1
    # in sync.
    second = Writer(cluster.nodes[2].bootstrap, "second")
    deadline = time.monotonic() + 90
    while True:
        second.write(ROLL_EVERY // 4)
        leader, in_sync, epoch = _partition(cluster, 2)
        if leader != 1 and 1 in in_sync and len(in_sync) == 3:
            # acks=all with node 1 in sync: node 1 holds these, so its copy of the
            # segment is open on disk before it restarts.
            second.write(3)
            if _partition(cluster, 2) == (leader, in_sync, epoch):
                break
        assert time.monotonic() < deadline, f"node 1 never followed a segment in sync: {leader} {in_sync}"

    # Node 1 restarts while that segment is active (and stays in sync: it is back long
    # before replica.lag.time.max.ms).
    cluster.nodes[1].kill()
    cluster.nodes[1].start(timeout=60)
    second.write(2)
    leader, in_sync, now_epoch = _partition(cluster, 2)
    assert now_epoch == epoch and 1 in in_sync, (leader, in_sync, epoch, now_epoch)

    # The segment's leader dies; node 1, the lowest-id live in-sync follower, takes over.
    cluster.nodes[leader].kill()
    survivor = next(n for n in (2, 3) if n != leader)
    _wait(lambda: _partition(cluster, survivor)[0] == 1, "node 1 leading after the failover")

    # Both producers carry on: their next sequences continue where node 1's adopted
    # state says they stand (Writer.write fails on any delivery error, fatal or not).
    first.write(5)
    second.write(5)
    # The third producer's retry of its batch is recognised, and answered with the offset
    # the batch was written at, not written again; a sequence gap is refused.
    assert _produce_raw(cluster, 1, TOPIC, _batch(third, 3, 0)) == (ErrorCode.NONE, third_offset)
    code, _ = _produce_raw(cluster, 1, TOPIC, _batch(third, 1, 4))
    assert code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode(code).name
