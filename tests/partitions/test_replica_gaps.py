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
