"""Append assigns dense offsets; read returns whole batches from the containing one."""

from __future__ import annotations

import time

import pytest

from broker.log import (
    InvalidAppendError,
    LogConfig,
    OffsetOutOfRangeError,
    PartitionLog,
    RecordTooLargeError,
)
from broker.protocol.records import decode_records, iter_batches, parse_header

from .helpers import batch, headers_of, read_all, small_config

pytestmark = pytest.mark.unit


def test_append_assigns_dense_offsets_and_rewrites_base_offset(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(), epoch=7) as log:
        first = log.append(batch(3))
        second = log.append(batch(2) + batch(4))
        assert (first.first_offset, first.last_offset, first.log_end_offset) == (0, 2, 3)
        assert second.batch_base_offsets == [3, 5]
        assert second.log_end_offset == log.log_end_offset == 9
        data = bytes(log.read(0, 1 << 20).data)
        headers = [h for _, h in iter_batches(data)]
        assert [h.base_offset for h in headers] == [0, 3, 5]
        # The epoch of the segment is stamped as partitionLeaderEpoch, CRC still valid.
        assert {h.partition_leader_epoch for h in headers} == {7}


def test_read_starts_with_the_batch_containing_the_offset(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        for _ in range(5):
            log.append(batch(10))
        result = log.read(23, 1 << 20)
        assert result.first_offset == 20
        assert headers_of(result.data)[0] == (20, 30)
        assert result.next_offset == 50


def test_read_returns_at_least_one_batch_even_when_larger_than_max_bytes(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(segment_bytes=1 << 20)) as log:
        big = batch(5, value_size=3000)
        log.append(big)
        log.append(batch(1))
        result = log.read(2, 100)
        assert headers_of(result.data) == [(0, 5)]
        assert len(result.data) == len(big)


def test_read_respects_max_bytes_with_whole_batches(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(segment_bytes=1 << 20)) as log:
        sizes = []
        for _ in range(10):
            b = batch(2, value_size=50)
            sizes.append(len(b))
            log.append(b)
        limit = sizes[0] * 3 + 10
        result = log.read(0, limit)
        assert len(result.data) == sizes[0] * 3
        assert headers_of(result.data) == [(0, 2), (2, 4), (4, 6)]


def test_read_stops_before_max_offset(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        for _ in range(4):
            log.append(batch(2))
        assert headers_of(log.read(0, 1 << 20, max_offset=4).data) == [(0, 2), (2, 4)]
        assert len(log.read(4, 1 << 20, max_offset=4).data) == 0


def test_read_outside_the_log_raises_offset_out_of_range(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        log.append(batch(3))
        assert len(log.read(3, 100).data) == 0
        with pytest.raises(OffsetOutOfRangeError):
            log.read(4, 100)
        with pytest.raises(OffsetOutOfRangeError):
            log.read(-1, 100)


def test_files_roll_at_segment_bytes_and_reads_cross_them(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(segment_bytes=2048)) as log:
        for i in range(40):
            log.append(batch(3, value_size=40, tag=i))
        assert log.file_count > 3
        spans = read_all(log, max_bytes=700)
        assert spans == [(3 * i, 3 * i + 3) for i in range(40)]
        # Every read from every offset begins with the batch that holds it.
        for offset in range(0, 120, 7):
            assert log.read(offset, 1).first_offset == offset - offset % 3


def test_read_returns_bytes_as_stored_without_copies_of_records(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        log.append(batch(4, tag=9))
        header, records = decode_records(bytes(log.read(0, 4096).data))
        assert header.base_offset == 0
        assert [r.value[:4] for r in records] == [b"9:0:", b"9:1:", b"9:2:", b"9:3:"]


def test_log_append_time_topic_stamps_broker_time(tmp_path):
    config = small_config(message_timestamp_type="LogAppendTime")
    with PartitionLog.open(str(tmp_path), config) as log:
        result = log.append(batch(2, timestamp=5), log_append_time=123_456)
        assert result.log_append_time == 123_456
        header = parse_header(bytes(log.read(0, 4096).data))
        assert header.max_timestamp == 123_456 and header.timestamp_type == 1
        decode_records(bytes(log.read(0, 4096).data))  # CRC recomputed and valid


def test_append_refuses_bad_input_and_oversized_batches(tmp_path):
    config = small_config(max_message_bytes=500)
    with PartitionLog.open(str(tmp_path), config) as log:
        with pytest.raises(RecordTooLargeError):
            log.append(batch(1, value_size=600))
        with pytest.raises(InvalidAppendError):
            log.append(batch(1)[:-3])
        with pytest.raises(InvalidAppendError):
            log.append(b"")
        assert log.log_end_offset == 0
        log.append(batch(1))
        assert log.log_end_offset == 1


def test_reopen_keeps_offsets_and_continues_densely(tmp_path):
    config = small_config()
    with PartitionLog.open(str(tmp_path), config) as log:
        for i in range(30):
            log.append(batch(2, tag=i))
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.log_end_offset == 60
        assert log.recovery.truncated_bytes == 0
        assert log.append(batch(1)).first_offset == 60
        assert read_all(log)[-2:] == [(58, 60), (60, 61)]


def test_config_from_kafka_topic_names():
    config = LogConfig.from_topic_config(
        {
            "retention.ms": "1000",
            "retention.bytes": "2048",
            "flush.messages": "1",
            "flush.ms": "9223372036854775807",
            "segment.bytes": "1048576",
            "message.timestamp.type": "LogAppendTime",
            "cleanup.policy": "delete",
        }
    )
    assert config.retention_ms == 1000 and config.retention_bytes == 2048
    assert config.flush_messages == 1 and config.flush_ms is None
    assert config.segment_bytes == 1 << 20 and config.syncs_every_append
    assert config.message_timestamp_type == "LogAppendTime"
    with pytest.raises(ValueError):
        LogConfig.from_topic_config({"flush.messages": "0"})


def test_new_config_applies_to_later_appends(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        log.append(batch(1, timestamp=5))
        log.config = small_config(message_timestamp_type="LogAppendTime", max_message_bytes=400)
        assert log.append(batch(1, timestamp=5)).log_append_time > 5
        with pytest.raises(RecordTooLargeError):
            log.append(batch(1, value_size=500))


def test_files_roll_by_age_counted_from_their_first_batch(tmp_path):
    now = int(time.time() * 1000)
    config = small_config(segment_bytes=1 << 20, segment_ms=60_000)
    with PartitionLog.open(str(tmp_path), config) as log:
        log.append(batch(1, timestamp=now - 120_000))
        log.append(batch(1, timestamp=now))
        # Still one file: its age starts when it was created in this process.
        assert log.file_count == 1
    with PartitionLog.open(str(tmp_path), config) as log:
        # After a restart the age comes from the first batch, which is two minutes old.
        log.append(batch(1, timestamp=now))
        assert log.file_count == 2
        log.append(batch(1, timestamp=now))
        assert log.file_count == 2
