"""Idempotent producer rules: duplicates, gaps, epochs, wrap-around."""

import pytest

from broker.partitions.producer_state import (
    INT32_MAX,
    ProducerStateTable,
    SequenceVerdict,
    last_sequence,
)

pytestmark = pytest.mark.unit


def _write(table: ProducerStateTable, pid: int, epoch: int, first: int, count: int, offset: int) -> None:
    check = table.check(pid, epoch, first, last_sequence(first, count))
    assert check.verdict is SequenceVerdict.ACCEPT, check.reason
    table.record(pid, epoch, first, last_sequence(first, count), offset, offset + count - 1, 0)


def test_in_sequence_batches_are_accepted() -> None:
    table = ProducerStateTable()
    _write(table, 7, 0, 0, 5, 100)
    _write(table, 7, 0, 5, 3, 105)
    assert table.entry(7).last_seq == 7  # type: ignore[union-attr]


def test_retry_of_a_recent_batch_is_a_duplicate_with_its_original_offsets() -> None:
    table = ProducerStateTable()
    for i in range(6):
        _write(table, 7, 0, i * 2, 2, 1000 + i * 2)
    check = table.check(7, 0, 8, 9)
    assert check.verdict is SequenceVerdict.DUPLICATE
    assert check.duplicate_of is not None
    assert (check.duplicate_of.first_offset, check.duplicate_of.last_offset) == (1008, 1009)
    # Only the last five batches are remembered: the first one is now out of order.
    assert table.check(7, 0, 0, 1).verdict is SequenceVerdict.OUT_OF_ORDER


def test_gap_in_sequence_is_out_of_order() -> None:
    table = ProducerStateTable()
    _write(table, 1, 0, 0, 1, 0)
    check = table.check(1, 0, 2, 2)
    assert check.verdict is SequenceVerdict.OUT_OF_ORDER
    assert "expected sequence 1" in check.reason


def test_older_epoch_is_fenced_and_newer_epoch_restarts_at_zero() -> None:
    table = ProducerStateTable()
    _write(table, 1, 3, 0, 4, 0)
    assert table.check(1, 2, 4, 4).verdict is SequenceVerdict.STALE_EPOCH
    assert table.check(1, 4, 4, 4).verdict is SequenceVerdict.OUT_OF_ORDER
    _write(table, 1, 4, 0, 1, 10)
    assert table.entry(1).epoch == 4  # type: ignore[union-attr]


def test_unknown_producer_may_start_anywhere() -> None:
    table = ProducerStateTable()
    assert table.check(42, 0, 17, 20).verdict is SequenceVerdict.ACCEPT


def test_sequence_wraps_after_int32_max() -> None:
    table = ProducerStateTable()
    _write(table, 1, 0, INT32_MAX - 1, 2, 0)
    assert table.entry(1).last_seq == INT32_MAX  # type: ignore[union-attr]
    assert last_sequence(INT32_MAX, 3) == 1
    _write(table, 1, 0, 0, 1, 2)


def test_truncation_forgets_batches_past_the_cut() -> None:
    table = ProducerStateTable()
    _write(table, 1, 0, 0, 2, 0)
    _write(table, 1, 0, 2, 2, 2)
    table.truncate_after(2)
    assert table.entry(1).last_seq == 1  # type: ignore[union-attr]
    table.truncate_after(0)
    assert table.entry(1) is None


def test_expiry_drops_idle_producers() -> None:
    table = ProducerStateTable()
    table.record(1, 0, 0, 0, 0, 0, timestamp=100)
    table.record(2, 0, 0, 0, 1, 1, timestamp=900)
    assert table.expire(older_than_ms=500) == 1
    assert table.entry(1) is None and table.entry(2) is not None


def test_a_batch_is_a_duplicate_only_when_both_ends_of_its_sequence_match() -> None:
    table = ProducerStateTable()
    _write(table, 1, 0, 0, 5, 0)
    _write(table, 1, 0, 5, 5, 5)
    # Same first sequence, other last one: a producer that re-split its records is not
    # retrying this batch, and must not be answered with the batch's offsets.
    assert table.check(1, 0, 0, 2).verdict is SequenceVerdict.OUT_OF_ORDER
    assert table.check(1, 0, 7, 9).verdict is SequenceVerdict.OUT_OF_ORDER
    duplicate = table.check(1, 0, 5, 9)
    assert duplicate.verdict is SequenceVerdict.DUPLICATE
    assert duplicate.duplicate_of is not None
    assert (duplicate.duplicate_of.first_offset, duplicate.duplicate_of.last_offset) == (5, 9)


def test_refusals_tell_the_producer_which_epoch_or_sequence_was_wanted() -> None:
    # The reason is the error message the client gets back.
    table = ProducerStateTable()
    _write(table, 9, 3, 0, 2, 0)
    stale = table.check(9, 2, 2, 2)
    assert stale.verdict is SequenceVerdict.STALE_EPOCH
    assert "producer 9 epoch 2 is older than 3" in stale.reason
    restart = table.check(9, 4, 2, 2)
    assert restart.verdict is SequenceVerdict.OUT_OF_ORDER
    assert "new epoch 4 must start at sequence 0, got 2" in restart.reason


def test_truncation_forgets_a_batch_that_the_cut_goes_through() -> None:
    table = ProducerStateTable()
    _write(table, 1, 0, 0, 2, 0)
    _write(table, 1, 0, 2, 2, 2)
    # The second batch sat at offsets 2 and 3; a cut at 3 loses part of it, so its
    # retry must be written again rather than answered as a duplicate.
    table.truncate_after(3)
    assert table.entry(1).last_seq == 1  # type: ignore[union-attr]
    assert table.check(1, 0, 2, 3).verdict is SequenceVerdict.ACCEPT


def test_a_producer_seen_exactly_at_the_expiry_cut_is_kept() -> None:
    table = ProducerStateTable()
    table.record(1, 0, 0, 0, 0, 0, timestamp=500)
    table.record(2, 0, 0, 0, 1, 1, timestamp=499)
    assert table.expire(older_than_ms=500) == 1
    assert table.entry(1) is not None and table.entry(2) is None


def test_seeded_sequences_continue_and_replace_what_was_remembered() -> None:
    table = ProducerStateTable()
    _write(table, 5, 0, 0, 10, 0)  # from an older segment this node led
    table.replace_with_last_sequences([(1, 2, 0, 700), (2, 0, 41, 800), (3, 1, -1, 900)])
    assert table.entry(5) is None
    assert len(table) == 3
    # Producer 1 wrote sequence 0 in epoch 2: 1 comes next, and a retry of 0 is a
    # duplicate whose offsets this node never learnt (Kafka answers -1 then).
    assert table.check(1, 2, 0, 0).verdict is SequenceVerdict.DUPLICATE
    duplicate = table.check(1, 2, 0, 0).duplicate_of
    assert duplicate is not None
    assert (duplicate.first_offset, duplicate.last_offset) == (-1, -1)
    assert table.check(1, 2, 1, 4).verdict is SequenceVerdict.ACCEPT
    assert table.check(1, 1, 1, 4).verdict is SequenceVerdict.STALE_EPOCH
    assert table.check(2, 0, 42, 42).verdict is SequenceVerdict.ACCEPT
    assert table.check(2, 0, 0, 0).verdict is SequenceVerdict.OUT_OF_ORDER
    # Producer 3 is known by its epoch only: its sequence starts at 0.
    assert table.check(3, 1, 0, 0).verdict is SequenceVerdict.ACCEPT
    assert table.check(3, 1, 5, 5).verdict is SequenceVerdict.OUT_OF_ORDER
    assert table.snapshot() == [
        [1, 2, 700, [[0, 0, -1, -1, 700]]],
        [2, 0, 800, [[41, 41, -1, -1, 800]]],
        [3, 1, 900, []],
    ]


def test_seeded_producers_survive_a_truncation_and_expire_by_their_own_time() -> None:
    table = ProducerStateTable()
    table.replace_with_last_sequences([(1, 0, 6, 100), (2, 0, 3, 900)])
    # The seeds stand for batches before the adopted segment: no cut in it removes them.
    table.truncate_after(0)
    assert table.entry(1) is not None and table.entry(2) is not None
    assert table.expire(older_than_ms=500) == 1
    assert table.entry(1) is None
    assert table.check(2, 0, 4, 4).verdict is SequenceVerdict.ACCEPT
