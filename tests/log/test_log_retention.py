"""Retention deletes whole sealed files from the head; DeleteRecords moves the start."""

from __future__ import annotations

import os

import pytest

from broker.log import OffsetOutOfRangeError, PartitionLog

from .helpers import batch, read_all, small_config

pytestmark = pytest.mark.unit


def fill(log: PartitionLog, count: int, *, timestamp: int = 1_000) -> None:
    for i in range(count):
        log.append(batch(2, value_size=100, timestamp=timestamp + i, tag=i))


def log_files(directory) -> list[str]:
    return sorted(p for p in os.listdir(directory) if p.endswith(".log"))


def test_retention_ms_deletes_old_files_but_never_the_active_one(tmp_path):
    config = small_config(segment_bytes=1024, retention_ms=10_000)
    with PartitionLog.open(str(tmp_path), config) as log:
        fill(log, 20, timestamp=1_000)
        files = log.file_count
        assert log.apply_retention(now_ms=5_000) == 0
        deleted = log.apply_retention(now_ms=1_000_000)
        assert deleted == files - 1 and log.file_count == 1
        assert log.log_start_offset == int(log_files(tmp_path)[0][:20])
        with pytest.raises(OffsetOutOfRangeError):
            log.read(0, 100)
        assert read_all(log)[-1][1] == 40
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.log_start_offset > 0 and log.log_end_offset == 40


def test_retention_bytes_keeps_the_newest_files_within_the_limit(tmp_path):
    config = small_config(segment_bytes=1024, retention_bytes=2500)
    with PartitionLog.open(str(tmp_path), config) as log:
        fill(log, 30)
        before = log.size_bytes
        assert log.apply_retention(now_ms=0) > 0
        # Kafka's rule: drop head files while the excess covers a whole file, so what
        # stays is above the limit by less than the oldest remaining file.
        head = os.path.getsize(tmp_path / log_files(tmp_path)[0])
        assert log.size_bytes < before and log.size_bytes - head < 2500 <= before
        assert log.read(log.log_start_offset, 1).first_offset == log.log_start_offset
        assert read_all(log)[-1][1] == 60


def test_retention_minus_one_keeps_everything(tmp_path):
    config = small_config(segment_bytes=1024, retention_ms=-1, retention_bytes=-1)
    with PartitionLog.open(str(tmp_path), config) as log:
        fill(log, 20)
        assert log.apply_retention(now_ms=1 << 60) == 0
        assert log.log_start_offset == 0


def test_delete_records_moves_the_start_and_drops_whole_files(tmp_path):
    config = small_config(segment_bytes=1024)
    with PartitionLog.open(str(tmp_path), config) as log:
        fill(log, 20)
        assert log.delete_records(15) == 15
        # The batch holding 15 starts at 14; reads from 15 still return it whole.
        assert log.read(15, 10).first_offset == 14
        with pytest.raises(OffsetOutOfRangeError):
            log.read(13, 100)
        assert all(int(name[:20]) <= 15 for name in log_files(tmp_path)[:1])
        assert log.delete_records(3) == 15  # never moves back
        with pytest.raises(OffsetOutOfRangeError):
            log.delete_records(41)
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.log_start_offset == 15
