"""ListOffsets and OffsetForLeaderEpoch in a three-node cluster, where a partition's
records lie on the nodes that led its segments: the leader answers for all of them,
other nodes refer clients to it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import kafka
import pytest

from broker.protocol.errors import ErrorCode
from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.compat, pytest.mark.slow]

SEGMENT_ENTRIES = 10
LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3
HOUR_MS = 3600 * 1000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Written:
    """What a test wrote: each record's timestamp, and the epoch and leader of the
    segment each offset went in."""

    stamps: list[int]
    epochs: list[int]
    leaders: list[int]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(Path(tmp_path_factory.mktemp("offsets")), 3,
                 env={"WALRUS_RETENTION_CHECK_INTERVAL_MS": "300"}) as c:
        deadline = time.monotonic() + 30
        while _metadata(c.nodes[1].bootstrap, []).brokers.__len__() < 3:
            assert time.monotonic() < deadline, "the three nodes did not all register"
            time.sleep(0.2)
        yield c


def _metadata(bootstrap: str, topics: list[str]) -> object:
    with RawClient(bootstrap) as raw:
        return raw.request("Metadata", 12, {"topics": [{"name": t} for t in topics]})


def _leader(cluster: Cluster, topic: str) -> tuple[int, int]:
    p = _metadata(cluster.nodes[1].bootstrap, [topic]).topics[0].partitions[0]  # type: ignore[attr-defined]
    return p.leader_id, p.leader_epoch


def _write(cluster: Cluster, topic: str, stamps: list[int], config: dict[str, str]) -> Written:
    """One segment of SEGMENT_ENTRIES records after another, waiting for each roll, so
    offsets [10r, 10r + 10) are the segment of round r's epoch."""
    with RawClient(cluster.nodes[1].bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": topic, "num_partitions": 1, "replication_factor": 1,
            "configs": [{"name": k, "value": v} for k, v in
                        {"segment.entries": str(SEGMENT_ENTRIES), **config}.items()]}],
            "timeout_ms": 10000})
    assert created.topics[0].error_code == 0, created
    producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                                         "linger.ms": 20})
    epochs: list[int] = []
    leaders: list[int] = []
    for start in range(0, len(stamps), SEGMENT_ENTRIES):
        leader, epoch = _leader(cluster, topic)
        for i in range(start, start + SEGMENT_ENTRIES):
            producer.produce(topic, value=f"record {i}".encode(), partition=0, timestamp=stamps[i])
        assert producer.flush(30) == 0
        epochs.extend([epoch] * SEGMENT_ENTRIES)
        leaders.extend([leader] * SEGMENT_ENTRIES)
        deadline = time.monotonic() + 20
        while _leader(cluster, topic)[1] == epoch:
            assert time.monotonic() < deadline, f"{topic} did not roll past epoch {epoch}"
            time.sleep(0.05)
    return Written(stamps, epochs, leaders)


def _list(bootstrap: str, topic: str, timestamp: int, current_epoch: int = -1) -> object:
    with RawClient(bootstrap) as raw:
        answer = raw.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp,
                                            "current_leader_epoch": current_epoch}]}]})
    return answer.topics[0].partitions[0]


def _end_for_epoch(bootstrap: str, topic: str, epoch: int) -> object:
    with RawClient(bootstrap) as raw:
        answer = raw.request("OffsetForLeaderEpoch", 4, {"replica_id": -1, "topics": [
            {"topic": topic, "partitions": [{"partition": 0, "current_leader_epoch": -1,
                                             "leader_epoch": epoch}]}]})
    return answer.topics[0].partitions[0]


def _first_at_or_after(stamps: list[int], target: int, log_start: int = 0,
                       held: Callable[[int], bool] = lambda _offset: True) -> int:
    return next((i for i, ts in enumerate(stamps)
                 if i >= log_start and ts >= target and held(i)), -1)


@pytest.fixture(scope="module")
def stamped(cluster: Cluster) -> Written:
    """60 records over six segments; record 35 (on a node that no longer leads) carries
    the largest timestamp, out of order."""
    base = _now_ms() - 10 * 60 * 1000
    stamps = [base + i * 1000 for i in range(60)]
    stamps[35] = _now_ms() + 10 * 60 * 1000
    return _write(cluster, "stamped", stamps, {})


def test_leader_answers_earliest_latest_and_timestamps_across_every_node(
    cluster: Cluster, stamped: Written,
) -> None:
    written = stamped
    leader, current = _leader(cluster, "stamped")
    assert len(set(written.epochs)) == 6
    bootstrap = cluster.nodes[leader].bootstrap

    latest = _list(bootstrap, "stamped", LATEST)
    assert (latest.error_code, latest.offset, latest.leader_epoch) == (0, 60, current)
    earliest = _list(bootstrap, "stamped", EARLIEST)
    assert (earliest.error_code, earliest.offset, earliest.leader_epoch) == (0, 0, written.epochs[0])

    targets = [written.stamps[0] - 1, *(written.stamps[i] for i in (3, 17, 29, 36, 44, 58, 59)),
               written.stamps[30] + 1, written.stamps[35] + 1]
    for target in targets:
        found = _list(bootstrap, "stamped", target)
        expected = _first_at_or_after(written.stamps, target)
        assert (found.error_code, found.offset) == (0, expected), f"target {target}"
        if expected >= 0:
            assert found.timestamp == written.stamps[expected]
            assert found.leader_epoch == written.epochs[expected]

    largest = _list(bootstrap, "stamped", MAX_TIMESTAMP)
    assert (largest.error_code, largest.offset, largest.timestamp) == (0, 35, written.stamps[35])
    assert largest.leader_epoch == written.epochs[35]


def test_nodes_that_do_not_lead_send_clients_to_the_leader(
    cluster: Cluster, stamped: Written,
) -> None:
    leader, current = _leader(cluster, "stamped")
    for n, node in cluster.nodes.items():
        if n == leader:
            continue
        assert _list(node.bootstrap, "stamped", EARLIEST).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (_end_for_epoch(node.bootstrap, "stamped", current).error_code
                == ErrorCode.NOT_LEADER_OR_FOLLOWER)
    stale = _list(cluster.nodes[leader].bootstrap, "stamped", LATEST, current_epoch=current - 1)
    assert stale.error_code == ErrorCode.FENCED_LEADER_EPOCH
    ahead = _list(cluster.nodes[leader].bootstrap, "stamped", LATEST, current_epoch=current + 1)
    assert ahead.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH


def test_every_past_epoch_ends_where_the_next_segment_begins(
    cluster: Cluster, stamped: Written,
) -> None:
    leader, current = _leader(cluster, "stamped")
    bootstrap = cluster.nodes[leader].bootstrap
    epochs = list(dict.fromkeys(stamped.epochs))
    for i, epoch in enumerate(epochs):
        found = _end_for_epoch(bootstrap, "stamped", epoch)
        assert (found.error_code, found.leader_epoch, found.end_offset) == (
            0, epoch, SEGMENT_ENTRIES * (i + 1)), f"epoch {epoch}"
    found = _end_for_epoch(bootstrap, "stamped", current)
    assert (found.error_code, found.leader_epoch, found.end_offset) == (0, current, 60)
    found = _end_for_epoch(bootstrap, "stamped", current + 5)
    assert (found.error_code, found.leader_epoch, found.end_offset) == (0, -1, -1)


def test_clients_seek_by_time_and_read_watermarks_over_the_whole_chain(
    cluster: Cluster, stamped: Written,
) -> None:
    targets = [stamped.stamps[i] for i in (0, 12, 27, 48)] + [stamped.stamps[35] + 1]
    expected = [_first_at_or_after(stamped.stamps, t) for t in targets]

    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap,
                                         "group.id": "offsets-by-time"})
    try:
        assert consumer.get_watermark_offsets(confluent_kafka.TopicPartition("stamped", 0),
                                              timeout=10) == (0, 60)
        for target, want in zip(targets, expected, strict=True):
            got = consumer.offsets_for_times([confluent_kafka.TopicPartition("stamped", 0, target)],
                                             timeout=10)
            assert got[0].error is None and got[0].offset == want, f"target {target}: {got}"
    finally:
        consumer.close()

    kp = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap)
    try:
        tp = kafka.TopicPartition("stamped", 0)
        assert kp.beginning_offsets([tp]) == {tp: 0}
        assert kp.end_offsets([tp]) == {tp: 60}
        for target, want in zip(targets, expected, strict=True):
            found = kp.offsets_for_times({tp: target})[tp]
            assert (found.offset if found is not None else -1) == want, f"target {target}"
    finally:
        kp.close()


def test_earliest_moves_past_segments_that_retention_deleted_on_their_nodes(
    cluster: Cluster,
) -> None:
    now = _now_ms()
    # Three segments of records three hours old, then five of recent ones: retention
    # (one hour) deletes the old ones on the nodes that hold them, each of which
    # holds a later segment too (a node never deletes its last file). The first
    # offset left is then on a node other than the leader, whose own oldest record
    # is later still.
    stamps = [now - 3 * HOUR_MS + i for i in range(30)] + [now - 1000 + i for i in range(50)]
    written = _write(cluster, "expiring", stamps, {"retention.ms": str(HOUR_MS)})
    leader, _ = _leader(cluster, "expiring")
    bootstrap = cluster.nodes[leader].bootstrap
    deadline = time.monotonic() + 20
    while (earliest := _list(bootstrap, "expiring", EARLIEST)).offset != 30:
        assert earliest.error_code == 0, earliest
        assert time.monotonic() < deadline, f"earliest stayed at {earliest.offset}"
        time.sleep(0.2)
    assert earliest.leader_epoch == written.epochs[30]
    old = _list(bootstrap, "expiring", stamps[0])
    assert (old.error_code, old.offset, old.timestamp) == (0, 30, stamps[30])
    assert _list(bootstrap, "expiring", LATEST).offset == 80
    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap,
                                         "group.id": "expiring-reader"})
    try:
        assert consumer.get_watermark_offsets(confluent_kafka.TopicPartition("expiring", 0),
                                              timeout=10) == (30, 80)
    finally:
        consumer.close()
