"""A sealed segment copied from another replica goes into the gap a log has for it:
readable at once, kept across reopen, and completed after a crash halfway through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.log import LogConfig, OffsetNotHeldError, PartitionLog
from broker.log.errors import InvalidAppendError
from broker.log.manifest import SegmentInfo
from broker.protocol.records import Record, RecordError, encode_batch, iter_batches
from broker.replication.segment_copier import complete_batches_below

pytestmark = pytest.mark.unit

CONFIG = LogConfig(io_backend="posix")


def _batch(n: int, base: int = 0) -> bytes:
    return encode_batch([Record(i, 0, None, f"v{base + i}".encode(), []) for i in range(n)],
                        base_offset=base)


def _bases(data: bytes | memoryview) -> list[int]:
    return [h.base_offset for _, h in iter_batches(data)]


def _staged(directory: Path, epoch: int, base: int, end: int, per_batch: int = 5) -> SegmentInfo:
    """A sealed copy of [base, end) of `epoch`, written as the copier writes it."""
    staging = PartitionLog.open(str(directory), CONFIG, epoch=-1)
    staging.begin_segment(epoch, base_offset=base)
    offset = base
    while offset < end:
        n = min(per_batch, end - offset)
        staging.append(_batch(n, offset), epoch=epoch, replicated=True)
        offset += n
    sealed = staging.seal_segment()
    staging.close()
    return sealed


def _values(log: PartitionLog, start: int, end: int) -> list[int]:
    out = []
    offset = start
    while offset < end:
        data = log.read(offset, 1 << 20).data
        for _, header in iter_batches(data):
            out.extend(range(header.base_offset, header.next_offset))
            offset = header.next_offset
    return out


def test_a_copy_fills_the_gap_between_held_segments_and_survives_reopen(tmp_path: Path) -> None:
    directory = str(tmp_path / "p")
    log = PartitionLog.open(directory, CONFIG)
    log.append(_batch(10), epoch=0)
    log.begin_segment(3, base_offset=30)
    log.append(_batch(5), epoch=3)
    with pytest.raises(OffsetNotHeldError):
        log.read(15, 1 << 20)
    segment = _staged(tmp_path / "copy", 2, 10, 30)
    log.insert_sealed_segment(segment, str(tmp_path / "copy"))
    assert _values(log, 0, 35) == list(range(35))
    assert [(s.epoch, s.base_offset, s.end_offset) for s in log.segments()] == [
        (0, 0, 10), (2, 10, 30), (3, 30, None)]
    # Appends go on in the active segment; a second report of the copy changes nothing.
    log.append(_batch(2), epoch=3)
    log.insert_sealed_segment(segment, str(tmp_path / "copy"))
    log.close()

    log = PartitionLog.open(directory, CONFIG)
    assert log.recovery.files_deleted == 0
    assert _values(log, 0, 37) == list(range(37))
    assert log.segments()[1].entries == 20
    log.close()


def test_a_copy_into_a_log_that_held_nothing_replaces_its_empty_segment(tmp_path: Path) -> None:
    directory = str(tmp_path / "p")
    log = PartitionLog.open(directory, CONFIG)  # an empty epoch-0 segment at 0
    segment = _staged(tmp_path / "copy", 4, 40, 60)
    log.insert_sealed_segment(segment, str(tmp_path / "copy"))
    assert (log.log_start_offset, log.log_end_offset) == (40, 60)
    assert _values(log, 40, 60) == list(range(40, 60))
    # The partition's next segments follow as usual.
    log.begin_segment(6, base_offset=80)
    log.append(_batch(3), epoch=6)
    log.close()
    log = PartitionLog.open(directory, CONFIG)
    assert [(s.epoch, s.base_offset, s.end_offset) for s in log.segments()] == [
        (4, 40, 60), (6, 80, None)]
    assert _values(log, 40, 60) == list(range(40, 60))
    log.close()


def test_a_copy_over_held_offsets_is_refused(tmp_path: Path) -> None:
    log = PartitionLog.open(str(tmp_path / "p"), CONFIG)
    log.append(_batch(10), epoch=0)
    log.begin_segment(1)
    segment = _staged(tmp_path / "copy", 1, 5, 15)
    with pytest.raises(InvalidAppendError):
        log.insert_sealed_segment(segment, str(tmp_path / "copy"))
    assert _values(log, 0, 10) == list(range(10))
    log.close()


@pytest.mark.parametrize("where", ["between", "alone"])
def test_a_crash_between_the_manifest_and_the_move_is_completed_by_a_second_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str,
) -> None:
    directory = str(tmp_path / "p")
    log = PartitionLog.open(directory, CONFIG)
    if where == "between":
        log.append(_batch(10), epoch=0)
        log.begin_segment(3, base_offset=30)
        log.append(_batch(5), epoch=3)
        base, end = 10, 30
    else:
        base, end = 0, 20
    segment = _staged(tmp_path / "copy", 2, base, end)
    real_replace = os.replace

    def crash_on_log_file(src: str, dst: str) -> None:
        if dst.endswith(".log"):
            raise OSError("simulated crash before the data file moved")
        real_replace(src, dst)

    monkeypatch.setattr("broker.log.partition_log.os.replace", crash_on_log_file)
    with pytest.raises(OSError):
        log.insert_sealed_segment(segment, str(tmp_path / "copy"))
    monkeypatch.undo()
    log.close()

    log = PartitionLog.open(directory, CONFIG)
    assert log.recovery.files_deleted == 0
    log.insert_sealed_segment(segment, str(tmp_path / "copy"))
    assert _values(log, base, end) == list(range(base, end))
    if where == "between":
        assert _values(log, 0, 35) == list(range(35))
    log.close()


def test_only_whole_batches_below_the_segment_end_are_kept() -> None:
    data = _batch(5, 0) + _batch(5, 5) + _batch(5, 10)
    assert _bases(complete_batches_below(data, 10)) == [0, 5]
    assert _bases(complete_batches_below(data[:-3], 20)) == [0, 5]  # a batch cut short
    with pytest.raises(RecordError):
        complete_batches_below(data, 12)  # a batch across the end: not this segment's
    corrupt = bytearray(data)
    corrupt[len(_batch(5, 0)) + 70] ^= 0xFF  # inside the second batch's records
    with pytest.raises(RecordError):
        complete_batches_below(bytes(corrupt), 15)
