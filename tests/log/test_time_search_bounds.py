"""The per-record look of a time lookup is bounded, and where it cannot finish (the
bound, records that do not decode, headers that promise what records lack) it answers
an offset at or before the exact one, never past it, and never raises."""

from __future__ import annotations

import logging
import time

import pytest
from crc32c import crc32c

from broker.log import PartitionLog
from broker.log.time_search import first_record_at
from broker.protocol.records import Compression, Record, encode_batch
from broker.protocol.records.batch import ATTRIBUTES_OFFSET, CRC_OFFSET, UINT32_STRUCT

from .helpers import small_config

pytestmark = pytest.mark.unit

BASE = 1_000_000


def late_last(count: int, *, compression: Compression = Compression.NONE) -> bytes:
    """`count` records at BASE, the last one 500 ms later."""
    return encode_batch(
        [Record(i, 500 if i == count - 1 else 0, None, b"v") for i in range(count)],
        base_timestamp=BASE,
        compression=compression,
    )


def with_crc(batch: bytearray) -> bytes:
    UINT32_STRUCT.pack_into(batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


def test_exact_below_the_bound() -> None:
    raw = late_last(1_000, compression=Compression.ZSTD)
    match = first_record_at(raw, BASE + 1, 0)
    assert match is not None
    assert (match.offset, match.timestamp, match.approximate) == (999, BASE + 500, None)
    assert first_record_at(raw, BASE, 0) == first_record_at(raw, BASE - 5, 0)
    assert first_record_at(raw, BASE + 501, 0) is None
    # Records below the start offset do not count.
    start = first_record_at(raw, BASE, 10)
    assert start is not None and start.offset == 10


def test_record_bound_answers_the_first_record_not_looked_at() -> None:
    raw = late_last(5_000, compression=Compression.GZIP)
    match = first_record_at(raw, BASE + 1, 0, max_records=1_000)
    assert match is not None
    assert (match.offset, match.timestamp) == (1_000, BASE + 500)
    assert match.approximate is not None and "1000 of 5000" in match.approximate
    # The bound never moves an answer it reaches.
    assert first_record_at(raw, BASE, 0, max_records=1_000) == first_record_at(raw, BASE, 0)


def test_size_bound_answers_the_batch_start() -> None:
    raw = late_last(5_000, compression=Compression.LZ4)
    match = first_record_at(raw, BASE + 1, 7, max_bytes=1_000)
    assert match is not None
    assert (match.offset, match.timestamp) == (7, BASE + 500)
    assert match.approximate is not None and "unreadable" in match.approximate


def test_records_that_do_not_decode_answer_the_batch_start() -> None:
    raw = bytearray(late_last(50, compression=Compression.SNAPPY))
    raw[-20:] = b"\xff" * 20  # garbage compressed data, with a correct CRC
    match = first_record_at(with_crc(raw), BASE + 1, 0)
    assert match is not None and match.offset == 0 and match.approximate is not None
    raw[-1] ^= 1  # and now the CRC is wrong too
    match = first_record_at(bytes(raw), BASE + 1, 3)
    assert match is not None and match.offset == 3 and "validate" in (match.approximate or "")


def test_a_batch_of_very_many_records_is_looked_at_quickly() -> None:
    """The shape that took 74 s: a small compressed batch of very many tiny records."""
    raw = encode_batch([Record(i, 0, None, None) for i in range(300_000)],
                       base_timestamp=BASE, compression=Compression.ZSTD)
    assert len(raw) < 1 << 20
    started = time.monotonic()
    match = first_record_at(raw, BASE + 1, 0)
    elapsed = time.monotonic() - started
    assert match is not None and match.offset == 100_000
    assert elapsed < 1.0, f"{elapsed:.2f}s"


def test_log_lookup_decodes_no_more_than_two_batches(tmp_path, caplog) -> None:
    """Headers whose max timestamp promises a record the batch does not hold (a lying
    producer, or bytes changed on disk): the lookup stops after two and answers the
    third batch's start, before any record that could match."""
    def lying(base_ts: int) -> bytes:
        raw = bytearray(encode_batch([Record(i, 0, None, b"x") for i in range(3)],
                                     base_timestamp=base_ts))
        raw[35:43] = (base_ts + 10_000).to_bytes(8, "big")  # maxTimestamp
        return with_crc(raw)

    with PartitionLog.open(str(tmp_path), small_config()) as log:
        for i in range(5):
            log.append(lying(BASE + i))
        log.append(late_last(3))
        with caplog.at_level(logging.WARNING, logger="walrus.log"):
            assert log.offset_for_timestamp(BASE + 500) == (6, BASE + 10_002)
        assert "2 batches looked at" in caplog.text


def test_log_lookup_over_a_huge_batch_is_conservative(tmp_path) -> None:
    with PartitionLog.open(str(tmp_path), small_config(max_message_bytes=4 << 20)) as log:
        log.append(late_last(10))
        log.append(late_last(300_000, compression=Compression.ZSTD))
        started = time.monotonic()
        offset, timestamp = log.offset_for_timestamp(BASE + 1) or (-1, -1)
        assert time.monotonic() - started < 1.0
        assert offset == 9  # the first batch's late record: exact
        offset, timestamp = log.offset_for_timestamp(BASE + 500 + 1) or (-1, -1)
        assert (offset, timestamp) == (-1, -1)
        log.delete_records(10)
        offset, timestamp = log.offset_for_timestamp(BASE + 1) or (-1, -1)
        # The exact answer is 10 + 299_999; the bound answers before it, never after.
        assert 10 <= offset <= 10 + 299_999 and timestamp == BASE + 500
        assert log.largest_timestamp_offset()[0] == BASE + 500
