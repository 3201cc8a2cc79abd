"""Replica sets chosen by the client: confluent-kafka's AdminClient creates a topic and
adds partitions with explicit assignments on a three-node cluster, Metadata shows them,
and the partitions take writes and serve reads there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from compat_tests.clients import consume, produce, sample_messages
from compat_tests.cluster import Cluster

pytestmark = [pytest.mark.compat, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(Path(tmp_path_factory.mktemp("assignments")), 3) as c:
        c.wait_for_brokers(3)
        yield c


def _placement(admin: AdminClient, topic: str) -> list[tuple[int, list[int]]]:
    """(leader, replicas) of each partition, as a client sees them."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return [(p.leader, list(p.replicas)) for _, p in sorted(partitions.items())]


def _wait_for(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_explicit_assignments_are_honoured_and_serve_records(cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    chosen = [[3, 1], [2, 3]]
    futures = admin.create_topics([NewTopic("chosen", num_partitions=len(chosen), replica_assignment=chosen)])
    futures["chosen"].result(timeout=30)
    _wait_for(lambda: _placement(admin, "chosen") == [(3, [3, 1]), (2, [2, 3])], "the chosen placement")

    grown = admin.create_partitions([NewPartitions("chosen", 3, replica_assignment=[[1, 2]])])
    grown["chosen"].result(timeout=30)
    _wait_for(lambda: len(_placement(admin, "chosen")) == 3, "the new partition")
    assert _placement(admin, "chosen")[2] == (1, [1, 2])

    messages = sample_messages(30)
    for partition in range(3):
        produce("confluent-kafka", cluster.nodes[2].bootstrap, "chosen", messages, partition=partition)
        got = consume("kafka-python", cluster.nodes[3].bootstrap, "chosen", len(messages), partition=partition)
        assert [(m.key, m.value) for m in got] == [(m.key, m.value) for m in messages]


def test_an_assignment_naming_an_unknown_broker_is_refused(cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    futures = admin.create_topics([NewTopic("nowhere", num_partitions=1, replica_assignment=[[1, 9]])])
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        futures["nowhere"].result(timeout=30)
    assert refused.value.args[0].code() == confluent_kafka.KafkaError.INVALID_REPLICA_ASSIGNMENT
