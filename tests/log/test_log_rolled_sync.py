"""Files that stopped taking appends are synced in the background; nothing that relies
on durability may run ahead of that sync."""

from __future__ import annotations

import time

import pytest

from broker.log import PartitionLog
from broker.log.manifest import load_recovery_point
from broker.log.recovery import log_file_bases

from .helpers import batch, read_all, small_config

pytestmark = pytest.mark.unit


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_rolled_files_are_synced_in_the_background_and_the_recovery_point_follows(tmp_path):
    directory = str(tmp_path)
    with PartitionLog.open(directory, small_config()) as log:
        for _ in range(40):
            log.append(batch(5, value_size=200))
        assert log.file_count > 3
        active_base = log_file_bases(directory)[-1]
        # No flush policy: the active file is left to the OS, everything before it is
        # synced by the background and the recovery point moves with it.
        _wait_for(lambda: log.flushed_offset == active_base)
        assert log.flushed_offset < log.log_end_offset
        # The syncer thread writes the recovery point just after it moves
        # flushed_offset: waited for, not read in the gap between the two.
        _wait_for(lambda: load_recovery_point(directory) == active_base)


def test_a_durable_append_after_a_roll_covers_the_rolled_files(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(flush_messages=1)) as log:
        for _ in range(30):
            result = log.append(batch(5, value_size=200))
            assert result.durable
            assert log.flushed_offset == log.log_end_offset
        assert log.file_count > 3


def test_sync_to_after_rolls_makes_everything_durable_at_once(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(flush_ms=3_600_000)) as log:
        for _ in range(30):
            log.append(batch(5, value_size=200))
        assert log.file_count > 3
        assert log.sync_to(log.log_end_offset)
        assert log.flushed_offset == log.log_end_offset


def test_truncating_into_a_rolled_file_then_appending_keeps_the_log_whole(tmp_path):
    directory = str(tmp_path)
    with PartitionLog.open(directory, small_config()) as log:
        for _ in range(12):
            log.append(batch(5, value_size=200))
        bases = log_file_bases(directory)
        assert len(bases) >= 3
        cut = bases[-2] + 5  # inside the file rolled last
        assert log.truncate_to(cut) == cut
        assert log.flushed_offset <= cut
        for _ in range(6):
            log.append(batch(5, value_size=200))
        expected = read_all(log)
        end = log.log_end_offset
    assert load_recovery_point(directory) == end
    with PartitionLog.open(directory, small_config()) as log:
        assert log.recovery.cuts == []
        assert read_all(log) == expected
        assert [b for b, _ in expected] == list(range(0, end, 5))
