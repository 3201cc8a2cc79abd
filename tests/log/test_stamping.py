"""Offsets and leader epoch stamped onto produced batches: what goes to disk is the
caller's batch with its offsets assigned, still valid; anything else is refused."""

from __future__ import annotations

import struct

import pytest

from broker.log.errors import InvalidAppendError, RecordTooLargeError
from broker.log.stamping import prepare_append, prepare_single
from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    TimestampType,
    decode_records,
    encode_batch,
    validate_batch,
)

pytestmark = pytest.mark.unit

_LAST_OFFSET_DELTA = 23
_MAGIC = 16
_LENGTH = 8


def _batch(count: int, timestamp: int = 1_000, value: bytes = b"value") -> bytes:
    return encode_batch(
        [(f"k{i}".encode(), value + bytes([i])) for i in range(count)],
        base_timestamp=timestamp,
        partition_leader_epoch=-1,
    )


def _patched(batch: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(batch)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def _written(chunks: list[bytes | bytearray | memoryview]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


# ---------------------------------------------------------------- prepare_single


def test_a_single_batch_is_stamped_without_copying_its_records() -> None:
    batch = _batch(3, timestamp=5_000)
    prepared = prepare_single(batch, 40, 7, 1 << 20)
    assert prepared is not None
    head, rest, size, next_offset, max_timestamp = prepared
    assert (size, next_offset, max_timestamp) == (len(batch), 43, 5_000)
    assert len(head) == 16 and rest.obj is batch
    stored = head + bytes(rest)
    header = validate_batch(stored)
    assert (header.base_offset, header.partition_leader_epoch) == (40, 7)
    _, records = decode_records(stored)
    assert [r.key for r in records] == [b"k0", b"k1", b"k2"]
    assert stored[16:] == batch[16:]


def test_a_single_batch_of_one_record_ends_one_past_its_offset() -> None:
    prepared = prepare_single(_batch(1), 0, 0, 1 << 20)
    assert prepared is not None and prepared[3] == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_batch(2) + b"\0", id="a stray byte"),
        pytest.param(_batch(2)[:-1], id="cut short"),
        pytest.param(_batch(2)[:BATCH_HEADER_SIZE - 1], id="shorter than a header"),
        pytest.param(_patched(_batch(2), _MAGIC, ">b", 1), id="magic 1"),
        pytest.param(_patched(_batch(2), _LAST_OFFSET_DELTA, ">i", -1), id="no records"),
    ],
)
def test_anything_but_one_whole_batch_is_left_to_the_full_check(data: bytes) -> None:
    assert prepare_single(data, 0, 0, 1 << 20) is None
    with pytest.raises(InvalidAppendError):
        prepare_append(data, 0, 0, 1 << 20, None)


def test_two_batches_are_left_to_the_full_path() -> None:
    data = _batch(1) + _batch(1)
    assert prepare_single(data, 0, 0, 1 << 20) is None
    assert len(prepare_append(data, 0, 0, 1 << 20, None)[1]) == 2


def test_a_single_batch_may_be_exactly_max_message_bytes() -> None:
    batch = _batch(2)
    assert prepare_single(batch, 0, 0, len(batch)) is not None
    assert prepare_single(batch, 0, 0, len(batch) - 1) is None


def test_a_single_batch_in_a_view_of_other_items_is_left_to_the_full_check() -> None:
    batch = _batch(2)
    view = memoryview(batch + bytes(-len(batch) % 4)).cast("I")
    assert prepare_single(view, 0, 0, 1 << 20) is None
    grid = memoryview(batch[:BATCH_HEADER_SIZE + 3]).cast("B", (2, (BATCH_HEADER_SIZE + 3) // 2))
    assert prepare_single(grid, 0, 0, 1 << 20) is None
    assert prepare_single(memoryview(batch), 0, 0, 1 << 20) is not None


# ---------------------------------------------------------------- prepare_append


def test_batches_get_consecutive_offsets_and_the_epoch_and_stay_valid() -> None:
    first, second = _batch(3, timestamp=100), _batch(2, timestamp=200)
    data = first + second
    chunks, spans, total = prepare_append(data, 10, 4, 1 << 20, None)
    assert total == len(data)
    assert spans == [
        (0, len(first), 10, 13, 100),
        (len(first), len(second), 13, 15, 200),
    ]
    stored = _written(chunks)
    assert len(stored) == total
    headers = [validate_batch(stored, 0), validate_batch(stored, len(first))]
    assert [(h.base_offset, h.next_offset, h.partition_leader_epoch) for h in headers] == [
        (10, 13, 4),
        (13, 15, 4),
    ]
    assert [h.timestamp_type for h in headers] == [TimestampType.CREATE_TIME] * 2
    # The records themselves are the caller's bytes, by reference.
    assert stored[16 : len(first)] == first[16:]
    assert data == first + second


def test_log_append_time_stamps_a_copy_and_keeps_the_crc_valid() -> None:
    first, second = _batch(2, timestamp=100), _batch(1, timestamp=200)
    data = bytearray(first + second)
    chunks, spans, _ = prepare_append(data, 0, 2, 1 << 20, 9_999)
    assert data == first + second
    assert [s[4] for s in spans] == [9_999, 9_999]
    assert [(s[2], s[3]) for s in spans] == [(0, 2), (2, 3)]
    stored = _written(chunks)
    for pos in (0, len(first)):
        header = validate_batch(stored, pos)
        assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
        assert header.max_timestamp == 9_999
        assert header.partition_leader_epoch == 2
    assert validate_batch(stored, len(first)).base_offset == 2


def test_a_view_of_other_items_is_read_as_its_bytes() -> None:
    # Values grown a byte at a time until the batch is whole 4-byte items.
    batch = next(b for n in range(4) if len(b := _batch(1, value=b"v" * n)) % 4 == 0)
    view = memoryview(batch).cast("I")
    chunks, spans, total = prepare_append(view, 5, 0, 1 << 20, None)
    assert total == len(batch)
    assert spans == [(0, len(batch), 5, 6, 1_000)]
    assert validate_batch(_written(chunks)).base_offset == 5


def test_an_empty_append_is_refused() -> None:
    with pytest.raises(InvalidAppendError, match=r"^append of zero bytes$"):
        prepare_append(b"", 0, 0, 1 << 20, None)


def test_stray_bytes_after_the_last_batch_are_refused_with_their_count() -> None:
    with pytest.raises(InvalidAppendError, match=r"^5 stray bytes"):
        prepare_append(_batch(1) + b"\0" * 5, 0, 0, 1 << 20, None)


def test_a_legacy_message_set_is_refused_with_the_reason() -> None:
    legacy = _patched(_batch(1), _MAGIC, ">b", 1)
    second = _batch(1)
    with pytest.raises(InvalidAppendError, match=f"^not a record batch at byte {len(second)}: message set v1"):
        prepare_append(second + legacy, 0, 0, 1 << 20, None)


def test_a_batch_length_below_a_header_is_refused() -> None:
    short = _patched(_batch(1), _LENGTH, ">i", BATCH_HEADER_SIZE - 13)
    with pytest.raises(InvalidAppendError, match=r"^not a record batch at byte 0: batch length 48"):
        prepare_append(short, 0, 0, 1 << 20, None)


def test_a_batch_that_runs_past_the_append_is_refused() -> None:
    batch = _batch(3)
    with pytest.raises(InvalidAppendError, match=f"^batch at byte {len(batch)} runs past"):
        prepare_append(batch + batch[:-1], 0, 0, 1 << 20, None)


def test_a_batch_over_max_message_bytes_is_refused_and_one_at_it_is_taken() -> None:
    small, big = _batch(1), _batch(4)
    spans = prepare_append(small + big, 0, 0, len(big), None)[1]
    assert [s[1] for s in spans] == [len(small), len(big)]
    with pytest.raises(RecordTooLargeError, match=f"batch of {len(big)} bytes exceeds"):
        prepare_append(small + big, 0, 0, len(big) - 1, None)


def test_a_batch_without_records_is_refused() -> None:
    empty = _patched(_batch(1), _LAST_OFFSET_DELTA, ">i", -1)
    with pytest.raises(InvalidAppendError, match=r"^batch at byte 0 has no records"):
        prepare_append(empty, 0, 0, 1 << 20, None)


def test_a_two_dimensional_view_is_read_as_its_bytes() -> None:
    batch = next(b for n in range(2) if len(b := _batch(1, value=b"v" * n)) % 2 == 0)
    grid = memoryview(batch).cast("B", (2, len(batch) // 2))
    chunks, spans, total = prepare_append(grid, 3, 0, 1 << 20, None)
    assert (total, spans[0][2:4]) == (len(batch), (3, 4))
    assert validate_batch(_written(chunks)).base_offset == 3


def test_an_empty_batch_after_another_is_refused_as_having_no_records() -> None:
    # A bare header of 61 bytes is a batch (with no records), not stray bytes.
    first = _batch(1)
    with pytest.raises(InvalidAppendError, match=rf"^batch at byte {len(first)} has no records$"):
        prepare_append(first + encode_batch([]), 0, 0, 1 << 20, None)
