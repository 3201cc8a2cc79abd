"""A replica that holds only some Walrus segments of its partition: the others were led
by other nodes, so its log has gaps between segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.log import LogConfig, OffsetNotHeldError, PartitionLog
from broker.log.errors import InvalidAppendError
from broker.protocol.records import Record, encode_batch, iter_batches

pytestmark = pytest.mark.unit


def _batch(n: int) -> bytes:
    return encode_batch([Record(i, 0, None, f"v{i}".encode(), []) for i in range(n)])


def _bases(data: bytes | memoryview) -> list[int]:
    return [h.base_offset for _, h in iter_batches(data)]


def test_a_new_replica_can_begin_at_a_later_offset(tmp_path: Path) -> None:
    log = PartitionLog.open(str(tmp_path / "p"), LogConfig())
    log.begin_segment(3, base_offset=500)
    assert (log.log_start_offset, log.log_end_offset) == (500, 500)
    assert log.append(_batch(4), epoch=3).first_offset == 500
    assert _bases(log.read(500, 1 << 20).data) == [500]
    log.close()


def test_segments_after_a_gap_survive_reopen_and_reads_in_the_gap_say_where_data_resumes(
    tmp_path: Path,
) -> None:
    directory = str(tmp_path / "p")
    log = PartitionLog.open(directory, LogConfig())
    log.append(_batch(10), epoch=0)
    log.begin_segment(2, base_offset=40)
    log.append(_batch(5), epoch=2)
    log.close()

    log = PartitionLog.open(directory, LogConfig())
    assert log.recovery.files_deleted == 0
    assert (log.log_start_offset, log.log_end_offset) == (0, 45)
    assert _bases(log.read(3, 1 << 20).data) == [0]
    with pytest.raises(OffsetNotHeldError) as held:
        log.read(20, 1 << 20)
    assert held.value.next_offset == 40
    assert _bases(log.read(42, 1 << 20).data) == [40]
    assert [s.epoch for s in log.segments()] == [0, 2]
    assert log.segments()[0].end_offset == 10
    log.close()


def test_a_segment_cannot_begin_below_the_log_end(tmp_path: Path) -> None:
    log = PartitionLog.open(str(tmp_path / "p"), LogConfig())
    log.append(_batch(10), epoch=0)
    with pytest.raises(InvalidAppendError):
        log.begin_segment(1, base_offset=5)
    log.close()


def test_replicated_append_keeps_the_leaders_offsets_and_times(tmp_path: Path) -> None:
    leader = PartitionLog.open(str(tmp_path / "leader"), LogConfig(message_timestamp_type="LogAppendTime"))
    follower = PartitionLog.open(str(tmp_path / "follower"), LogConfig(message_timestamp_type="LogAppendTime"))
    leader.append(_batch(3), epoch=0)
    leader.append(_batch(2), epoch=0)
    shipped = bytes(leader.read(0, 1 << 20).data)
    result = follower.append(shipped, epoch=0, replicated=True)
    assert (result.first_offset, result.log_end_offset) == (0, 5)
    assert bytes(follower.read(0, 1 << 20).data) == shipped
    # A batch that does not start at the follower's log end is refused.
    with pytest.raises(InvalidAppendError):
        follower.append(shipped, epoch=0, replicated=True)
    leader.close()
    follower.close()
