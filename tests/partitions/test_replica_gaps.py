"""A replica whose log has gaps (segments led elsewhere) opens and keeps producer state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.log import AsyncLog, Flusher, LogConfig, PartitionLog
from broker.partitions.replica import PartitionReplica
from broker.protocol.records import Record, encode_batch

pytestmark = pytest.mark.unit


def _batch(n: int, seq: int) -> bytes:
    return encode_batch([Record(i, 0, None, b"v", []) for i in range(n)],
                        producer_id=9, producer_epoch=0, base_sequence=seq)


def test_replica_with_a_gap_reopens_and_still_detects_duplicates(tmp_path: Path) -> None:
    directory = str(tmp_path / "t-0")
    log = PartitionLog.open(directory, LogConfig())
    log.append(_batch(3, 0), epoch=0)
    log.begin_segment(2, base_offset=50)
    log.append(_batch(2, 3), epoch=2)
    log.close()

    flusher = Flusher()
    try:
        replica = PartitionReplica("t", 0, AsyncLog(PartitionLog.open(directory, LogConfig()), flusher))
        entry = replica.producers.entry(9)
        assert entry is not None and entry.last_seq == 4
        outcome = asyncio.run(replica.append(_batch(2, 3), epoch=2))
        assert outcome.base_offset == 50  # the retry is answered with its first offset
        replica.log.close()
    finally:
        flusher.stop()


def test_the_placeholder_a_reopened_log_begins_never_passes_for_the_real_epoch_0(tmp_path: Path) -> None:
    # A follower held only the head of epoch 0 ([0, 5) of [0, 8)), then followed epoch 1
    # from the seal at 8, and restarted after that one was sealed too: the reopened log
    # begins an empty segment of epoch 0 at its end, sealed when the next one begins.
    # That placeholder once counted as "all of epoch 0", so fetches of offsets 5..7 were
    # read here and answered out of range, and a segment copy of epoch 0 was skipped.
    directory = str(tmp_path / "t-0")
    log = PartitionLog.open(directory, LogConfig())
    log.append(_batch(5, 0), epoch=0)
    log.begin_segment(1, base_offset=8)
    log.append(_batch(3, 8), epoch=1)
    log.seal_segment()
    log.close()

    flusher = Flusher()
    try:
        replica = PartitionReplica("t", 0, AsyncLog(PartitionLog.open(directory, LogConfig()), flusher))
        replica.begin_segment(2, 11)
        epochs = [(s.epoch, s.base_offset, s.end_offset) for s in replica.log.log.segments()]
        assert (0, 11, 11) in epochs, epochs  # the sealed placeholder
        assert not replica.holds_sealed(0, 0, 8)
        assert not replica.holds_offset(0, 5)
        assert replica.holds_offset(0, 4)
        assert replica.holds_sealed(1, 8, 11)
        assert not replica.seal_at(0, 8)  # it holds less of epoch 0 than the seal
        replica.log.close()
    finally:
        flusher.stop()
