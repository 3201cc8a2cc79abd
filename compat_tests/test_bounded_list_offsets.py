"""ListOffsets by time over a batch of very many tiny records: the broker answers in
bounded time and memory, and answers other clients meanwhile.

A compressed batch of under a megabyte can hold millions of records; looking a time up
in it must not decode them all on the event loop (it took 74 s and 1.5 GB for 9.4 M).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from crc32c import crc32c

from broker.protocol.records import BATCH_HEADER_SIZE, Compression, compress
from broker.protocol.records.batch import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    MAGIC,
    UINT32_STRUCT,
)
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient
from compat_tests.responsiveness import ResponsivenessProbe

pytestmark = pytest.mark.compat

BASE_TS = 1_700_000_000_000
# Scaled so that decoding every record, as the old lookup did, holds the loop for
# seconds on a small machine; the batch still compresses to well under 1 MiB.
MANY = 500_000
MAX_TIMESTAMP = -3


def _varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def tiny_records_batch(count: int, *, late_delta: int) -> bytes:
    """`count` records with neither key nor value, all at BASE_TS except the last, which
    is `late_delta` ms later; zstd-compressed, as a producer would send it."""
    section = bytearray()
    for i in range(count):
        body = b"\x00" + _varint(late_delta if i == count - 1 else 0) + _varint(i) + b"\x01\x01\x00"
        section += _varint(len(body)) + body
    payload = compress(Compression.ZSTD, section)
    batch = bytearray(BATCH_HEADER_SIZE + len(payload))
    HEADER_STRUCT.pack_into(batch, 0, 0, len(batch) - LOG_OVERHEAD, -1, MAGIC, 0,
                            int(Compression.ZSTD), count - 1, BASE_TS, BASE_TS + late_delta,
                            -1, -1, -1, count)
    batch[BATCH_HEADER_SIZE:] = payload
    UINT32_STRUCT.pack_into(batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


def produce_batch(client: RawClient, topic: str, batch: bytes) -> int:
    """Produce `batch` to partition 0 (creating the topic); returns its base offset."""
    deadline = time.monotonic() + 20
    client.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
    while True:
        answer = client.request("Produce", 9, {"acks": 1, "timeout_ms": 10_000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
        p = answer.responses[0].partition_responses[0]
        if p.error_code == 0:
            return int(p.base_offset)
        assert time.monotonic() < deadline, f"produce kept failing with error {p.error_code}"
        time.sleep(0.2)


def list_offset(client: RawClient, topic: str, timestamp: int) -> Any:
    answer = client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [
            {"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}]}]})
    return answer.topics[0].partitions[0]


def test_time_lookup_in_a_batch_of_half_a_million_records_is_bounded(broker: BrokerProcess) -> None:
    topic = f"many-tiny-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.bootstrap, 120) as client:
        base = produce_batch(client, topic, tiny_records_batch(MANY, late_delta=1000))
        last = base + MANY - 1
        target = BASE_TS + 1000  # only the batch's last record is that late
        with ResponsivenessProbe(broker) as probe:
            started = time.monotonic()
            by_time = list_offset(client, topic, target)
            by_time_s = time.monotonic() - started
            started = time.monotonic()
            newest = list_offset(client, topic, MAX_TIMESTAMP)
            newest_s = time.monotonic() - started
    print(f"by time: {by_time_s:.2f}s, max timestamp: {newest_s:.2f}s; {probe.summary()}")
    assert by_time.error_code == 0 and newest.error_code == 0
    # The answer may stop short of the exact record when the batch is larger than the
    # lookup reads, but never past it: a consumer seeking there misses nothing.
    assert base <= by_time.offset <= last and by_time.timestamp >= target
    assert base <= newest.offset <= last and newest.timestamp == target
    assert by_time_s < 3 and newest_s < 3
    assert probe.worst_latency_s < 1.0, probe.summary()
    assert not probe.failures, probe.summary()
    assert probe.rss_growth < 64 << 20, probe.summary()


def test_time_lookup_inside_a_batch_stays_exact(broker: BrokerProcess, tmp_path: Path) -> None:
    """Below the bound the per-record look is exact, as Kafka's: the first record whose
    timestamp reaches the target, with that record's timestamp."""
    topic = f"few-tiny-{uuid.uuid4().hex[:6]}"
    count = 5_000
    with RawClient(broker.bootstrap) as client:
        base = produce_batch(client, topic, tiny_records_batch(count, late_delta=1000))
        exact = list_offset(client, topic, BASE_TS + 1)
        first = list_offset(client, topic, BASE_TS)
        none = list_offset(client, topic, BASE_TS + 1001)
    assert (exact.offset, exact.timestamp) == (base + count - 1, BASE_TS + 1000)
    assert (first.offset, first.timestamp) == (base, BASE_TS)
    assert (none.error_code, none.offset) == (0, -1)
