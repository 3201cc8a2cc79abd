"""Requests that name the same thing many times: the broker does the work once per
distinct name, answers in bounded time and memory, and serves others meanwhile."""

from __future__ import annotations

import time
import uuid

import pytest

from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient
from compat_tests.responsiveness import ResponsivenessProbe
from compat_tests.test_bounded_list_offsets import produce_batch, tiny_records_batch

pytestmark = pytest.mark.compat

# Main took 5.8 s and hundreds of MB answering this many copies of one name.
COPIES = 200_000


def test_metadata_naming_one_topic_200k_times_is_answered_once(broker: BrokerProcess) -> None:
    topic = f"dup-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.bootstrap, 120) as client:
        client.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
        with ResponsivenessProbe(broker) as probe:
            started = time.monotonic()
            answer = client.request("Metadata", 12, {
                "topics": [{"name": topic}] * COPIES, "allow_auto_topic_creation": True})
            elapsed = time.monotonic() - started
    print(f"Metadata with {COPIES} copies: {elapsed:.2f}s; {probe.summary()}")
    # Kafka takes the requested names as a set: one answer per topic.
    assert [(t.name, t.error_code) for t in answer.topics] == [(topic, 0)]
    assert elapsed < 4
    assert probe.worst_latency_s < 1.0, probe.summary()
    assert not probe.failures, probe.summary()
    assert probe.rss_growth < 128 << 20, probe.summary()


def test_metadata_answers_each_distinct_topic_once_in_request_order(broker: BrokerProcess) -> None:
    a, b, missing = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("a", "b", "missing"))
    with RawClient(broker.bootstrap) as client:
        client.request("Metadata", 12, {"topics": [{"name": a}, {"name": b}],
                                        "allow_auto_topic_creation": True})
        answer = client.request("Metadata", 12, {
            "topics": [{"name": b}, {"name": missing}, {"name": a}, {"name": b}, {"name": missing}],
            "allow_auto_topic_creation": False})
    assert [(t.name, t.error_code) for t in answer.topics] == [(b, 0), (missing, 3), (a, 0)]


def test_list_offsets_refuses_a_duplicated_partition_as_kafka_does(broker: BrokerProcess) -> None:
    """Kafka answers INVALID_REQUEST for every entry of a partition named twice, and
    does no lookup for it; 200,000 copies are answered quickly."""
    topic = f"dup-lo-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.bootstrap, 120) as client:
        produce_batch(client, topic, tiny_records_batch(3, late_delta=5))
        once = {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}
        with ResponsivenessProbe(broker) as probe:
            started = time.monotonic()
            answer = client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": topic, "partitions": [once] * COPIES}]})
            elapsed = time.monotonic() - started
        single = client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [once]}]})
    print(f"ListOffsets with {COPIES} copies: {elapsed:.2f}s; {probe.summary()}")
    codes = {p.error_code for t in answer.topics for p in t.partitions}
    assert codes == {42}  # INVALID_REQUEST
    assert (single.topics[0].partitions[0].error_code, single.topics[0].partitions[0].offset) == (0, 3)
    assert elapsed < 6
    assert probe.worst_latency_s < 1.0, probe.summary()
    assert not probe.failures, probe.summary()


PARTITIONS = 100_000


def test_produce_to_100k_partitions_does_not_hold_other_clients(broker: BrokerProcess) -> None:
    """A produce request naming 100,000 partitions (of a topic that does not exist) is
    answered partition by partition with the event loop handed back between them (main
    held ApiVersions for 5.6 s with twice as many)."""
    records = tiny_records_batch(1, late_delta=0)
    with RawClient(broker.bootstrap, 120) as client, ResponsivenessProbe(broker) as probe:
        started = time.monotonic()
        answer = client.request("Produce", 9, {"acks": 1, "timeout_ms": 1000, "topic_data": [
            {"name": f"absent-{uuid.uuid4().hex[:6]}", "partition_data": [
                {"index": i, "records": records} for i in range(PARTITIONS)]}]})
        elapsed = time.monotonic() - started
    print(f"Produce to {PARTITIONS} partitions: {elapsed:.2f}s; {probe.summary()}")
    codes = {p.error_code for t in answer.responses for p in t.partition_responses}
    assert codes == {3}  # UNKNOWN_TOPIC_OR_PARTITION
    assert probe.worst_latency_s < 1.0, probe.summary()
    assert not probe.failures, probe.summary()
