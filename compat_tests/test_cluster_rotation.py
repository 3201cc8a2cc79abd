"""Segment rotation in a three-node cluster: leadership of each partition's active
segment moves from node to node as segments fill, and every record stays readable,
in order, from any node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.clients import consume, produce, sample_messages
from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.compat, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(Path(tmp_path_factory.mktemp("rotation")), 3) as c:
        # Fails the tests when the three brokers are not all seen in time, instead of
        # carrying on with fewer and blaming rotation.
        c.wait_for_brokers(3)
        yield c


def _segments(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(leader, epoch) of each partition, from Metadata."""
    with RawClient(bootstrap) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    return [(p.leader_id, p.leader_epoch) for p in md.topics[0].partitions]


def test_leadership_rotates_and_every_record_is_read_in_order_from_any_node(cluster: Cluster) -> None:
    topic = "rotating"
    with RawClient(cluster.nodes[1].bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": topic, "num_partitions": 1, "replication_factor": 1,
            "configs": [{"name": "segment.entries", "value": "40"}]}], "timeout_ms": 10000})
        assert created.topics[0].error_code == 0, created
    leaders_seen = set()
    sent = []
    for round_ in range(12):
        chunk = sample_messages(25)
        produce("confluent-kafka", cluster.nodes[1 + round_ % 3].bootstrap, topic, chunk)
        sent.extend(chunk)
        leaders_seen.add(_segments(cluster.nodes[1].bootstrap, topic)[0][0])
    _, epoch = _segments(cluster.nodes[1].bootstrap, topic)[0]
    assert epoch >= 5, f"segments should have rolled several times, epoch is {epoch}"
    assert leaders_seen == {1, 2, 3}, f"every node should lead a segment, saw {leaders_seen}"
    for n, node in cluster.nodes.items():
        for client in ("confluent-kafka", "kafka-python"):
            got = consume(client, node.bootstrap, topic, len(sent))
            assert [c.offset for c in got] == list(range(len(sent))), f"node {n}, {client}"
            assert [(c.key, c.value) for c in got] == [(m.key, m.value) for m in sent]
