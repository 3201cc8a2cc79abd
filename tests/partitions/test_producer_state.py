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
