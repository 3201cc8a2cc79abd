"""ListOffsets by time: the first record at or after a timestamp, and the record with
the largest timestamp, found through the time index without scanning the log."""

from __future__ import annotations

import pytest

from broker.log import PartitionLog
from broker.protocol.records import Compression, Record, TimestampType, encode_batch, reframe_batch

from .helpers import small_config

pytestmark = pytest.mark.unit


def spread_batch(base_timestamp: int, deltas: list[int]) -> bytes:
    """One batch whose records carry base_timestamp + delta each."""
    return encode_batch(
        [Record(i, delta, None, b"v%d" % i) for i, delta in enumerate(deltas)],
        base_timestamp=base_timestamp,
    )


def test_offset_for_timestamp_finds_the_exact_record_inside_a_batch(tmp_path):
    config = small_config(segment_bytes=1024, index_interval_bytes=64)
    with PartitionLog.open(str(tmp_path), config) as log:
        for i in range(40):
            log.append(spread_batch(10_000 + 100 * i, [0, 30, 60, 90]))
        assert log.file_count > 2
        assert log.offset_for_timestamp(0) == (0, 10_000)
        assert log.offset_for_timestamp(10_000 + 100 * 17 + 31) == (17 * 4 + 2, 10_000 + 1760)
        assert log.offset_for_timestamp(10_000 + 100 * 39 + 90) == (159, 13_990)
        assert log.offset_for_timestamp(13_991) is None
        # Never an offset below the log start.
        log.delete_records(70)
        assert log.offset_for_timestamp(0) == (70, 10_000 + 1760)


def test_records_out_of_time_order_are_handled_like_kafka(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        log.append(spread_batch(5_000, [0, 900, 10]))  # offsets 0-2, max 5900
        log.append(spread_batch(5_100, [0]))  # offset 3
        # The first record (in offset order) at or after 5050 is offset 1 (5900).
        assert log.offset_for_timestamp(5_050) == (1, 5_900)
        assert log.offset_for_timestamp(5_901) is None
        assert log.largest_timestamp == 5_900
        assert log.largest_timestamp_offset() == (5_900, 1)


def test_largest_timestamp_survives_reopen_and_log_append_time(tmp_path):
    config = small_config(segment_bytes=1024)
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.largest_timestamp_offset() == (-1, -1)
        for i in range(30):
            log.append(spread_batch(1_000 + i, [0, 5]))
        log.append(spread_batch(50_000, [0, 7, 3]))
        for i in range(10):
            log.append(spread_batch(2_000 + i, [0]))
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.largest_timestamp == 50_007
        assert log.largest_timestamp_offset() == (50_007, 61)
    append_time = small_config(message_timestamp_type="LogAppendTime")
    with PartitionLog.open(str(tmp_path / "lat"), append_time) as log:
        log.append(spread_batch(1, [0, 1, 2]), log_append_time=77_000)
        log.append(spread_batch(1, [0]), log_append_time=78_000)
        assert log.offset_for_timestamp(77_500) == (3, 78_000)
        assert log.largest_timestamp_offset() == (78_000, 3)
        assert TimestampType.LOG_APPEND_TIME == 1


def test_lookups_by_time_answer_by_the_header_of_a_batch_they_cannot_decode(tmp_path, caplog):
    # Such a batch was stored before produce checked records: ListOffsets by time then
    # closed the client's connection with a traceback, every time.
    garbage = reframe_batch(spread_batch(2_000, [0, 50]), compression=Compression.GZIP,
                            section=b"not gzip at all")
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        log.append(spread_batch(1_000, [0, 10]))  # offsets 0-1
        log.append(garbage)  # offsets 2-3, max timestamp 2_050
        log.append(spread_batch(3_000, [0]))  # offset 4
        assert log.offset_for_timestamp(1_005) == (1, 1_010)
        assert log.offset_for_timestamp(1_500) == (2, 2_050)
        assert log.offset_for_timestamp(2_051) == (4, 3_000)
        log.append(reframe_batch(spread_batch(9_000, [0, 5]), compression=Compression.LZ4,
                                 section=b"\x00" * 40))  # offsets 5-6
        assert log.largest_timestamp_offset() == (9_005, 5)
    assert "records unreadable" in caplog.text
