"""A three-node cluster: one metadata view from every node, partitions led across
nodes, and produce requests sent to the wrong node reaching the leader."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch
from compat_tests.clients import consume, produce, sample_messages
from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.compat, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(Path(tmp_path_factory.mktemp("cluster")), 3) as c:
        yield c


def _metadata(bootstrap: str, topics: list[str] | None) -> object:
    with RawClient(bootstrap) as raw:
        return raw.request("Metadata", 12, {
            "topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": True,
        })


def _view(md: object) -> tuple:
    return (
        tuple(sorted((b.node_id, b.host, b.port) for b in md.brokers)),  # type: ignore[attr-defined]
        md.controller_id,  # type: ignore[attr-defined]
        tuple(sorted(
            (t.name, p.partition_index, p.leader_id, p.leader_epoch)
            for t in md.topics for p in t.partitions  # type: ignore[attr-defined]
        )),
    )


def _wait_for_brokers(cluster: Cluster, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(len(_metadata(n.bootstrap, []).brokers) == count for n in cluster.nodes.values()):  # type: ignore[attr-defined]
            return
        time.sleep(0.2)
    raise AssertionError("brokers did not all register")


def test_every_node_gives_the_same_metadata(cluster: Cluster) -> None:
    _wait_for_brokers(cluster, 3)
    with RawClient(cluster.nodes[1].bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [
            {"name": "spread", "num_partitions": 6, "replication_factor": 1}], "timeout_ms": 10000})
        assert created.topics[0].error_code == 0
    views = {_view(_metadata(n.bootstrap, None)) for n in cluster.nodes.values()}
    assert len(views) == 1
    (brokers, controller, partitions), = views
    assert [b[0] for b in brokers] == [1, 2, 3]
    assert controller in (1, 2, 3)
    leaders = {leader for name, _, leader, _ in partitions if name == "spread"}
    assert leaders == {1, 2, 3}, "six partitions should be led by all three nodes"


def test_produce_to_a_node_that_does_not_lead_is_forwarded(cluster: Cluster) -> None:
    _wait_for_brokers(cluster, 3)
    md = _metadata(cluster.nodes[1].bootstrap, ["forwarded"])
    for p in md.topics[0].partitions:  # type: ignore[attr-defined]
        leader = p.leader_id
        other = next(n for n in cluster.nodes if n != leader)
        with RawClient(cluster.nodes[other].bootstrap) as raw:
            answer = raw.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": "forwarded", "partition_data": [
                    {"index": p.partition_index,
                     "records": encode_batch([Record(0, 0, None, b"via-" + str(other).encode(), [])])}]}]})
        part = answer.responses[0].partition_responses[0]
        assert part.error_code == ErrorCode.NONE and part.base_offset == 0


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka", "aiokafka"])
def test_clients_bootstrapped_from_one_node_use_the_whole_cluster(cluster: Cluster, client: str) -> None:
    _wait_for_brokers(cluster, 3)
    bootstrap = cluster.nodes[2].bootstrap
    topic = f"whole-{client}"
    with RawClient(bootstrap) as raw:
        raw.request("CreateTopics", 7, {"topics": [
            {"name": topic, "num_partitions": 3, "replication_factor": 1}], "timeout_ms": 10000})
    for partition in range(3):
        sent = sample_messages(20)
        produce(client, bootstrap, topic, sent, partition=partition, compression="gzip")
        got = consume(client, bootstrap, topic, len(sent), partition=partition)
        assert [(c.key, c.value) for c in got] == [(m.key, m.value) for m in sent]


def test_every_node_reports_one_cluster_id(cluster: Cluster) -> None:
    ids = {_metadata(n.bootstrap, []).cluster_id for n in cluster.nodes.values()}  # type: ignore[attr-defined]
    assert len(ids) == 1 and None not in ids
