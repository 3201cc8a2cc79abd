"""Idempotent-producer state handed from one segment to the next through the metadata.

A node that seals a segment (the leader rolling it, or the follower taking over from a
dead leader) puts its producer table in the command; a replica that begins the next
segment adopts it. So a node that missed earlier segments still recognises a retried
batch (with its offsets) and refuses a sequence gap, where it used to forget every
producer and accept both: a record stored twice, or an in-doubt record skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.coordination.commands import (
    CreateTopic,
    DeleteTopic,
    ReassignLeader,
    RegisterBroker,
    RollSegment,
)
from broker.coordination.results import SegmentRolled
from broker.coordination.state import ClusterState
from broker.log import AsyncLog, Flusher, LogConfig, PartitionLog
from broker.partitions.in_sync import InSyncTracker
from broker.partitions.producer_state import ProducerStateTable, SequenceVerdict, last_sequence
from broker.partitions.replica import PRODUCER_EXPIRATION_MS, PRODUCER_SNAPSHOT, PartitionReplica
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch

pytestmark = pytest.mark.unit

T0 = 1_000_000
PID = 4000


def _batch(count: int, seq: int, *, pid: int = PID, base_offset: int = 0) -> bytes:
    return encode_batch([Record(i, 0, None, f"v{seq + i}".encode(), []) for i in range(count)],
                        base_offset=base_offset, producer_id=pid, producer_epoch=0, base_sequence=seq)


@pytest.fixture
def flusher() -> Iterator[Flusher]:
    f = Flusher()
    yield f
    f.stop()


def _replica(directory: Path, flusher: Flusher, rows: dict[tuple[int, int], list[Any]] | None = None,
             sealed: dict[int, int] | None = None) -> PartitionReplica:
    log = AsyncLog(PartitionLog.open(str(directory), LogConfig()), flusher)
    return PartitionReplica("t", 0, log, lambda: dict(sealed or {}),
                            lambda epoch, base: (rows or {}).get((epoch, base)))


# ------------------------------------------------------------------ the table


def test_a_snapshot_restores_every_cached_batch_with_its_offsets() -> None:
    table = ProducerStateTable()
    for i in range(7):
        table.record(PID, 2, i * 3, i * 3 + 2, 100 + i * 3, 102 + i * 3, 50 + i)
    table.record(PID + 1, 0, 0, 0, 200, 200, 60)
    restored = ProducerStateTable.from_snapshot(table.snapshot())
    assert restored.snapshot() == table.snapshot()
    check = restored.check(PID, 2, 15, 17)
    assert check.verdict is SequenceVerdict.DUPLICATE and check.duplicate_of is not None
    assert (check.duplicate_of.first_offset, check.duplicate_of.last_offset) == (115, 117)
    assert restored.check(PID, 2, 22, 22).verdict is SequenceVerdict.OUT_OF_ORDER
    assert restored.check(PID, 2, 21, 21).verdict is SequenceVerdict.ACCEPT


def test_a_malformed_snapshot_is_refused() -> None:
    with pytest.raises((ValueError, TypeError)):
        ProducerStateTable.from_snapshot([[PID, 0, 0, [[1, 2, 3]]]])


# ------------------------------------------------------------------ the metadata


def _cluster() -> ClusterState:
    state = ClusterState()
    for n in (1, 2, 3):
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n), T0)
    state.apply(CreateTopic("t", (7).to_bytes(16, "big"), 1, 3), T0)
    return state


def test_a_roll_carries_the_producer_state_to_the_next_segment_only() -> None:
    state = _cluster()
    rows = [[PID, 0, 5, [[0, 9, 0, 9, 5]]]]
    rolled = state.apply(RollSegment("t", 0, 0, 10, rows), T0)
    assert isinstance(rolled, SegmentRolled)
    assert state.producers_at("t", 0, 1, 10) == rows
    # Asked for another segment (or another base), there is nothing to give.
    assert state.producers_at("t", 0, 0, 0) is None
    assert state.producers_at("t", 0, 1, 9) is None
    copy = ClusterState.from_snapshot(state.to_snapshot())
    assert copy.producers_at("t", 0, 1, 10) == rows
    assert copy.to_snapshot() == state.to_snapshot()

    later = [[PID, 0, 6, [[10, 19, 10, 19, 6]]]]
    state.apply(RollSegment("t", 0, 1, 20, later), T0)
    assert state.producers_at("t", 0, 1, 10) is None
    assert state.producers_at("t", 0, 2, 20) == later
    state.apply(DeleteTopic("t"), T0)
    assert state.producers_at_base == {}


def test_a_failover_carries_the_followers_producer_state() -> None:
    state = _cluster()
    leader = state.topics["t"].partitions[0].active.leader
    follower = next(n for n in (1, 2, 3) if n != leader)
    rows = [[PID, 1, 5, [[0, 3, 0, 3, 5]]]]
    # The leader's heartbeats stop; once it counts as dead a follower seals its segment.
    later = T0 + 60_000
    for n in (1, 2, 3):
        if n != leader:
            state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n), later)
    result = state.apply(ReassignLeader("t", 0, 0, 4, follower, rows), later)
    assert isinstance(result, SegmentRolled), result
    assert state.producers_at("t", 0, 1, 4) == rows


def test_a_seal_with_malformed_producers_is_refused_and_changes_nothing() -> None:
    state = _cluster()
    before = state.to_snapshot()
    result = state.apply({"kind": "roll_segment", "topic": "t", "partition": 0,
                          "expected_epoch": 0, "end_offset": 10, "producers": "nope"}, T0)
    assert not isinstance(result, SegmentRolled)
    assert state.to_snapshot() == before


# ------------------------------------------------------------------ the replica


def _table_of_a_leader_that_wrote(batches: list[tuple[int, int, int]]) -> list[Any]:
    """Producer rows of a node that wrote (first offset, first seq, count) batches."""
    table = ProducerStateTable()
    for offset, seq, count in batches:
        table.record(PID, 0, seq, last_sequence(seq, count), offset, offset + count - 1, 0)
    return table.snapshot()


def test_a_replica_that_missed_segments_recognises_retries_and_refuses_gaps(
        tmp_path: Path, flusher: Flusher) -> None:
    directory = tmp_path / "t-0"
    # This node held the first segment only; others wrote offsets 3..49, the last
    # batch (sequences 20..24) at 45..49, and sealed there.
    log = PartitionLog.open(str(directory), LogConfig())
    log.append(_batch(3, 0), epoch=0)
    log.seal_segment()
    log.close()
    rows = {(3, 50): _table_of_a_leader_that_wrote([(3, 3, 17), (45, 20, 5)])}
    replica = _replica(directory, flusher, rows)
    replica.begin_segment(3, 50)

    # The producer's retry of its last batch (it never heard the answer) is a duplicate,
    # answered with the offsets it was written at on the other nodes.
    retried = asyncio.run(replica.append(_batch(5, 20), epoch=3))
    assert (retried.error, retried.base_offset, retried.next_offset) == (ErrorCode.NONE, 45, 50)
    assert replica.log_end_offset == 50
    # Sequence 26 skips 25: refused, where a producer this node knew nothing of would
    # have been taken at its word.
    gap = asyncio.run(replica.append(_batch(1, 26), epoch=3))
    assert gap.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    written = asyncio.run(replica.append(_batch(1, 25), epoch=3))
    assert (written.error, written.base_offset) == (ErrorCode.NONE, 50)
    replica.log.close()

    # After a restart the adopted state is still there (kept beside the log), with the
    # batch written since replayed on top of it.
    reopened = _replica(directory, flusher)
    assert asyncio.run(reopened.append(_batch(5, 20), epoch=3)).base_offset == 45
    assert asyncio.run(reopened.append(_batch(1, 25), epoch=3)).base_offset == 50
    assert asyncio.run(reopened.append(_batch(1, 27), epoch=3)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    reopened.log.close()


def test_a_follower_cut_back_to_the_seal_takes_the_sealers_state(tmp_path: Path, flusher: Flusher) -> None:
    directory = tmp_path / "t-0"
    # Six one-record batches as a follower of epoch 0; the new leader sealed at 3, so
    # the tail 3..5 is cut, and with it every batch this replica remembered.
    rows = {(1, 3): _table_of_a_leader_that_wrote([(0, 0, 1), (1, 1, 1), (2, 2, 1)])}
    replica = _replica(directory, flusher, rows, sealed={0: 3})
    for i in range(6):
        replica.append_replicated(_batch(1, i, base_offset=i), 0, 0)
    replica.begin_segment(1, 3)
    assert replica.log_end_offset == 3
    assert asyncio.run(replica.append(_batch(1, 2), epoch=1)).base_offset == 2
    assert asyncio.run(replica.append(_batch(1, 4), epoch=1)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert asyncio.run(replica.append(_batch(1, 3), epoch=1)).base_offset == 3
    replica.log.close()


def test_a_segment_without_state_in_the_metadata_keeps_the_old_rules(tmp_path: Path, flusher: Flusher) -> None:
    directory = tmp_path / "t-0"
    replica = _replica(directory, flusher)
    asyncio.run(replica.append(_batch(2, 0), epoch=0))
    replica.log.log.seal_segment()
    # Past a hole, with nothing from the metadata, the producer starts afresh (KIP-360).
    replica.begin_segment(2, 40)
    assert replica.producers.entry(PID) is None
    replica.log.close()


def test_reopening_after_a_seal_does_not_apply_old_seals_to_the_new_empty_segment(
        tmp_path: Path, flusher: Flusher) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(str(directory), LogConfig())
    log.append(_batch(3, 0), epoch=0)
    log.begin_segment(2, base_offset=3)
    log.append(_batch(3, 3), epoch=2)
    log.seal_segment()
    log.close()
    # Reopened, the log begins an empty segment of epoch 0 at its end (6); the seal of
    # epoch 0 at 3 is about the first segment, and must not cut anything.
    replica = _replica(directory, flusher, sealed={0: 3, 2: 6})
    assert replica.log.log.active_epoch == 0
    assert replica.seal_at(0, 3)
    assert replica.log_end_offset == 6
    replica.log.close()


# ------------------------------------------------------------------ the in-sync set


def test_a_follower_joining_the_in_sync_set_holds_the_high_watermark_at_once() -> None:
    tracker = InSyncTracker(1, [1, 2, 3], [1, 2], now_ms=0, lag_ms=10_000)
    tracker.follower_fetched(2, 10, 10, 1)
    tracker.follower_fetched(3, 6, 10, 1)
    assert tracker.high_watermark(10) == 10
    # The leader proposes adding node 3 (it reached the high watermark when it was 6):
    # from then on a failover may choose node 3, so nothing past its log end may count
    # as committed.
    tracker.joining = {3}
    assert tracker.high_watermark(10) == 6


def test_a_seal_leaves_out_producers_idle_past_their_expiration(tmp_path: Path, flusher: Flusher) -> None:
    replica = _replica(tmp_path / "t-0", flusher)
    now = int(time.time() * 1000)
    replica.producers.record(PID, 0, 0, 0, 0, 0, now - PRODUCER_EXPIRATION_MS - 1000)
    replica.producers.record(PID + 1, 0, 0, 0, 1, 1, now)
    assert [row[0] for row in replica.producer_rows_for_seal()] == [PID + 1]
    replica.log.close()


def test_a_restarted_leader_counts_nothing_past_its_segment_base_until_followers_confirm(
        tmp_path: Path, flusher: Flusher) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(str(directory), LogConfig())
    log.append(_batch(3, 0), epoch=0)
    log.begin_segment(1, base_offset=3)
    log.append(_batch(2, 3), epoch=1)  # written just before a crash: no follower has it
    log.close()

    replica = _replica(directory, flusher)
    replica.lead_with_followers(InSyncTracker(1, [1, 2, 3], [1, 2, 3], now_ms=0, lag_ms=10_000))
    assert replica.high_watermark == 3
    # The producer retries the batch it never heard about: a duplicate, answered with
    # its offsets, but not acknowledged (acks=all) while the followers lack it.
    retried = asyncio.run(replica.append(_batch(2, 3), epoch=1))
    assert (retried.error, retried.base_offset, retried.next_offset) == (ErrorCode.NONE, 3, 5)

    async def confirmed(follower_offsets: list[int]) -> bool:
        for follower, offset in zip((2, 3), follower_offsets, strict=True):
            replica.follower_fetched(follower, offset)
        return await replica.wait_for_high_watermark(5, 0.05)

    assert not asyncio.run(confirmed([5, 3]))
    assert asyncio.run(confirmed([5, 5]))
    replica.log.close()


def test_deleting_a_topic_removes_its_adopted_producer_state_with_the_directory(tmp_path: Path) -> None:
    from broker.log import LogManager
    from broker.partitions.manager import ReplicaManager

    rows = {(3, 50): _table_of_a_leader_that_wrote([(45, 20, 5)])}
    logs = LogManager(str(tmp_path), LogConfig())
    try:
        replicas = ReplicaManager(logs, lambda topic: LogConfig(),
                                  producers_at=lambda topic, p, epoch, base: rows.get((epoch, base)))
        replica = replicas.get_or_open("t", 0)
        replica.begin_segment(3, 50)
        directory = Path(replica.log.log.directory)
        assert (directory / PRODUCER_SNAPSHOT).exists()

        replicas.delete_topic("t")
        assert not directory.exists()

        # A topic created again under the same name starts with no producers: the old
        # producer's next sequence is not expected, and its retry is no duplicate.
        rows.clear()
        again = replicas.get_or_open("t", 0)
        assert again.log_end_offset == 0
        fresh = asyncio.run(again.append(_batch(5, 20), epoch=0))
        assert (fresh.error, fresh.base_offset) == (ErrorCode.NONE, 0)
        assert asyncio.run(again.append(_batch(1, 0, pid=PID + 7), epoch=0)).error is ErrorCode.NONE
    finally:
        logs.close()
