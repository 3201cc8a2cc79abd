"""Recovery on open: torn and corrupt tails are cut, indexes are rebuilt, nothing
before the damage is lost, and offsets continue densely afterwards."""

from __future__ import annotations

import os

import pytest

from broker.log import PartitionLog

from .helpers import batch, read_all, small_config

pytestmark = pytest.mark.unit

FIRST_LOG = "00000000000000000000.log"


def crash(log: PartitionLog) -> None:
    """Drop the log as a killed process would: no final index write, no checkpoint."""
    log._close_files()


def write_batches(directory: str, count: int, **config: object) -> list[int]:
    """Append `count` batches (2 records each, flushed), crash, return batch sizes."""
    log = PartitionLog.open(
        directory, small_config(segment_bytes=1 << 20, flush_messages=1, **config)
    )
    sizes = []
    for i in range(count):
        b = batch(2, value_size=30, tag=i)
        sizes.append(len(b))
        log.append(b)
    crash(log)
    return sizes


def flip(path: str, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_torn_tail_is_cut_and_offsets_continue(tmp_path):
    sizes = write_batches(str(tmp_path), 10)
    path = tmp_path / FIRST_LOG
    os.truncate(path, sum(sizes) - 7)
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        assert log.log_end_offset == 18
        assert log.recovery.truncated_bytes == sizes[-1] - 7
        assert "torn" in log.recovery.cuts[0]
        assert read_all(log) == [(2 * i, 2 * i + 2) for i in range(9)]
        assert log.append(batch(1)).first_offset == 18
    assert os.path.getsize(path) == sum(sizes[:9]) + len(batch(1))


def test_flipped_byte_in_the_last_batch_cuts_only_that_batch(tmp_path):
    sizes = write_batches(str(tmp_path), 10)
    flip(str(tmp_path / FIRST_LOG), sum(sizes) - 5)
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        assert log.log_end_offset == 18
        assert "CRC" in log.recovery.cuts[0]
        assert read_all(log) == [(2 * i, 2 * i + 2) for i in range(9)]


def test_flipped_byte_mid_file_cuts_from_the_corrupt_batch(tmp_path):
    sizes = write_batches(str(tmp_path), 10)
    # Corrupt batch 4's records: batches 0-3 stay, nothing after 4 is trusted.
    flip(str(tmp_path / FIRST_LOG), sum(sizes[:4]) + 70)
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        assert log.log_end_offset == 8
        assert log.recovery.truncated_bytes == sum(sizes[4:])
        assert read_all(log) == [(2 * i, 2 * i + 2) for i in range(4)]
        assert log.append(batch(3)).batch_base_offsets == [8]


def test_zeroed_tail_left_by_a_crash_is_cut(tmp_path):
    sizes = write_batches(str(tmp_path), 5)
    with open(tmp_path / FIRST_LOG, "ab") as f:
        f.write(b"\0" * 4096)
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        assert log.log_end_offset == 10
        assert os.path.getsize(tmp_path / FIRST_LOG) == sum(sizes)


@pytest.mark.parametrize("damage", ["truncated", "missing", "garbage"])
def test_damaged_offset_index_is_rebuilt_without_losing_data(tmp_path, damage):
    config = small_config(segment_bytes=1 << 20, index_interval_bytes=100)
    with PartitionLog.open(str(tmp_path), config) as log:
        for i in range(40):
            log.append(batch(2, value_size=30, tag=i))
    index = tmp_path / "00000000000000000000.index"
    assert os.path.getsize(index) >= 8 * 20
    if damage == "truncated":
        os.truncate(index, 8 * 5 + 3)
    elif damage == "missing":
        os.unlink(index)
    else:
        # Plausible-looking entries that point into the middle of batches.
        index.write_bytes(b"".join(bytes([0, 0, 0, i, 0, 0, 0, 5 + 7 * i]) for i in range(1, 9)))
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.log_end_offset == 80
        assert log.recovery.truncated_bytes == 0
        for offset in range(80):
            assert log.read(offset, 1).first_offset == offset - offset % 2
    assert os.path.getsize(index) >= 8 * 20


def test_truncated_time_index_still_finds_offsets_by_timestamp(tmp_path):
    config = small_config(segment_bytes=1 << 20, index_interval_bytes=100)
    with PartitionLog.open(str(tmp_path), config) as log:
        for i in range(40):
            log.append(batch(2, value_size=30, timestamp=10_000 + 10 * i, tag=i))
    os.truncate(tmp_path / "00000000000000000000.timeindex", 12 * 2 + 5)
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.offset_for_timestamp(10_000 + 10 * 25) == (50, 10_250)
        assert log.offset_for_timestamp(10_000 + 10 * 25 - 3) == (50, 10_250)
        assert log.offset_for_timestamp(99_999) is None
        assert log.largest_timestamp == 10_390


def test_corrupt_file_in_the_middle_drops_the_files_after_it(tmp_path):
    config = small_config(segment_bytes=1024, flush_messages=1)
    log = PartitionLog.open(str(tmp_path), config)
    for i in range(30):
        log.append(batch(2, value_size=30, tag=i))
    files = sorted(p for p in os.listdir(tmp_path) if p.endswith(".log"))
    assert len(files) >= 3
    crash(log)
    # Forget the recovery point so the second file is verified, and damage it.
    os.unlink(tmp_path / "recovery-point")
    second = tmp_path / files[1]
    flip(str(second), 80)
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.log_end_offset == int(files[1][:20])
        assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".log")) == files[:2]
        assert read_all(log)[-1][1] == log.log_end_offset
