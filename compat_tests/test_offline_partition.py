"""A partition whose files cannot be read at start-up goes offline alone: the broker
starts, every other partition serves, and that one answers KAFKA_STORAGE_ERROR to
produce, fetch and list offsets (it used to stop the whole broker from starting)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient
from compat_tests.test_bounded_list_offsets import BASE_TS, produce_batch, tiny_records_batch

pytestmark = [pytest.mark.compat, pytest.mark.fault]

KAFKA_STORAGE_ERROR = 56


def _produce(client: RawClient, topic: str, partition: int) -> Any:
    answer = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [
            {"index": partition, "records": tiny_records_batch(3, late_delta=5)}]}]})
    return answer.responses[0].partition_responses[0]


def _fetch(client: RawClient, topic: str, partition: int) -> Any:
    answer = client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": [
            {"topic": topic, "partitions": [{"partition": partition, "fetch_offset": 0,
                                             "partition_max_bytes": 1 << 20,
                                             "current_leader_epoch": -1, "log_start_offset": -1}]}]})
    return answer.responses[0].partitions[0]


def _list_offset(client: RawClient, topic: str, partition: int, timestamp: int) -> Any:
    answer = client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [
            {"partition_index": partition, "current_leader_epoch": -1, "timestamp": timestamp}]}]})
    return answer.topics[0].partitions[0]


def test_a_partition_with_an_unreadable_manifest_goes_offline_alone(tmp_path: Path) -> None:
    topic = f"halves-{uuid.uuid4().hex[:6]}"
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        with RawClient(broker.bootstrap) as client:
            client.request("CreateTopics", 7, {"timeout_ms": 5000, "validate_only": False, "topics": [
                {"name": topic, "num_partitions": 2, "replication_factor": 1,
                 "assignments": [], "configs": []}]})
            for partition in (0, 1):
                deadline = time.monotonic() + 20
                while _produce(client, topic, partition).error_code != 0:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
        broker.stop()
        manifest = tmp_path / "data" / "logs" / f"{topic}-0" / "segments.json"
        assert manifest.exists()
        manifest.write_text('{"version": 1, "log_start_offset": ')  # torn

        broker.start()
        with RawClient(broker.bootstrap) as client:
            # The other partition serves: produce, fetch, list offsets.
            assert _produce(client, topic, 1).error_code == 0
            healthy = _fetch(client, topic, 1)
            assert healthy.error_code == 0 and healthy.high_watermark == 6
            assert _list_offset(client, topic, 1, -1).offset == 6
            assert _list_offset(client, topic, 1, BASE_TS).offset == 0
            # And new topics come and go as usual.
            produce_batch(client, f"fresh-{uuid.uuid4().hex[:6]}", tiny_records_batch(2, late_delta=1))
            # The broken one answers KAFKA_STORAGE_ERROR, and the connection stays up.
            assert _produce(client, topic, 0).error_code == KAFKA_STORAGE_ERROR
            assert _fetch(client, topic, 0).error_code == KAFKA_STORAGE_ERROR
            for timestamp in (-1, -2, -3, BASE_TS):
                assert _list_offset(client, topic, 0, timestamp).error_code == KAFKA_STORAGE_ERROR
            assert _produce(client, topic, 1).error_code == 0
        log = broker.log_tail(400)
        assert f"partition {topic}-0 is offline" in log
        assert "Traceback" not in log
    finally:
        broker.stop()
