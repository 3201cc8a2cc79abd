"""Walrus segments: begin at the log end under a new epoch, seal with recorded figures,
survive restarts, fence stale epochs and answer OffsetForLeaderEpoch."""

from __future__ import annotations

import pytest

from broker.log import (
    UNDEFINED_EPOCH,
    UNDEFINED_OFFSET,
    EpochEndOffset,
    FencedEpochError,
    InvalidTruncationError,
    PartitionLog,
)
from broker.protocol.records import iter_batches

from .helpers import batch, read_all, small_config

pytestmark = pytest.mark.unit


def test_begin_and_seal_segments_record_end_entries_and_size(tmp_path):
    config = small_config(segment_bytes=1 << 20)
    with PartitionLog.open(str(tmp_path), config, epoch=1) as log:
        sizes = [len(log.read(0, 0).data) for _ in range(0)]
        for _ in range(3):
            sizes.append(log.append(batch(4)).size_bytes)
        sealed = log.seal_segment()
        assert (sealed.epoch, sealed.base_offset, sealed.end_offset) == (1, 0, 12)
        assert sealed.entries == 12 and sealed.size_bytes == sum(sizes)
        with pytest.raises(FencedEpochError):
            log.append(batch(1))
        log.begin_segment(3)
        log.append(batch(2), epoch=3)
        with pytest.raises(FencedEpochError):
            log.append(batch(2), epoch=1)
        data = bytes(log.read(12, 4096).data)
        assert [h.partition_leader_epoch for _, h in iter_batches(data)] == [3]
    with PartitionLog.open(str(tmp_path), config) as log:
        listed = [
            (s.epoch, s.base_offset, s.end_offset, s.sealed, s.entries) for s in log.segments()
        ]
        assert listed == [(1, 0, 12, True, 12), (3, 12, None, False, 2)]
        assert log.active_epoch == 3
        # A new segment starts a new file at the log end.
        assert log.file_count == 2


def test_begin_segment_seals_the_active_one_and_refuses_old_epochs(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(), epoch=5) as log:
        log.append(batch(2))
        with pytest.raises(FencedEpochError):
            log.begin_segment(5)
        log.begin_segment(6)
        assert [(s.epoch, s.end_offset) for s in log.segments()] == [(5, 2), (6, None)]


def test_end_offset_for_epoch_follows_kafka_rules(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(), epoch=2) as log:
        log.append(batch(5))  # epoch 2: [0, 5)
        log.begin_segment(4)
        log.append(batch(3))  # epoch 4: [5, 8)
        log.begin_segment(7)
        log.append(batch(1))  # epoch 7: [8, 9)
        assert log.end_offset_for_epoch(7) == EpochEndOffset(7, 9)
        assert log.end_offset_for_epoch(4) == EpochEndOffset(4, 8)
        assert log.end_offset_for_epoch(5) == EpochEndOffset(4, 8)
        assert log.end_offset_for_epoch(2) == EpochEndOffset(2, 5)
        # Below every known epoch: the asked epoch with the first epoch's start.
        assert log.end_offset_for_epoch(1) == EpochEndOffset(1, 0)
        assert log.end_offset_for_epoch(9) == EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def test_truncate_to_cuts_a_divergent_tail_but_never_a_sealed_segment(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config(segment_bytes=1024)) as log:
        log.append(batch(4))
        log.begin_segment(1)
        for i in range(20):
            log.append(batch(3, value_size=40, tag=i))
        assert log.file_count > 2
        # Offset 20 sits inside batch [19, 22): that whole batch goes.
        assert log.truncate_to(20) == 19
        assert read_all(log)[-1] == (16, 19)
        assert log.append(batch(1)).first_offset == 19
        with pytest.raises(InvalidTruncationError):
            log.truncate_to(2)
    with PartitionLog.open(str(tmp_path), small_config(segment_bytes=1024)) as log:
        assert log.log_end_offset == 20
        assert read_all(log)[-1] == (19, 20)
