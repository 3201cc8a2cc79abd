"""A replica refuses a produced batch whose records do not bear out its header, stores
nothing of it, and goes on at the next dense offset; large batches are checked without
holding the event loop."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.log import AsyncLog, Flusher, LogConfig, PartitionLog
from broker.partitions.contents_check import (
    BIG_SECTIONS_AT_ONCE,
    INLINE_SECTION_BYTES,
    SLICE_RECORDS,
    _big_section_slot,
    check_contents,
)
from broker.partitions.replica import CheckedBatch, PartitionReplica
from broker.protocol.errors import ErrorCode
from broker.protocol.records import (
    Compression,
    DecompressedTooLargeError,
    InvalidRecordError,
    Record,
    compress,
    decode_records,
    encode_batch,
    reframe_batch,
    validate_batch,
)

pytestmark = pytest.mark.unit


def _good(count: int = 3, codec: Compression = Compression.NONE) -> bytes:
    return encode_batch([(None, f"v{i}".encode()) for i in range(count)], compression=codec)


LIES: dict[str, tuple[Callable[[], bytes], ErrorCode]] = {
    "random bytes flagged gzip": (
        lambda: reframe_batch(_good(), compression=Compression.GZIP,
                              section=random.Random(7).randbytes(500)),
        ErrorCode.CORRUPT_MESSAGE),
    "count above the records": (
        lambda: reframe_batch(_good(5), records_count=6, last_offset_delta=5),
        ErrorCode.INVALID_RECORD),
    "count below the records": (
        lambda: reframe_batch(_good(5, Compression.LZ4), records_count=4, last_offset_delta=3),
        ErrorCode.INVALID_RECORD),
    "a repeated offset delta": (
        lambda: reframe_batch(encode_batch([Record(d, 0, None, b"v") for d in (0, 1, 2, 2, 4)])),
        ErrorCode.INVALID_RECORD),
    "two billion records claimed by one": (
        lambda: reframe_batch(_good(1, Compression.GZIP), records_count=2_000_000_000,
                              last_offset_delta=1_999_999_999),
        ErrorCode.INVALID_RECORD),
    "no records": (lambda: encode_batch([]), ErrorCode.INVALID_RECORD),
    "a zstd bomb past the bound": (
        lambda: reframe_batch(_good(1), compression=Compression.ZSTD,
                              section=compress(Compression.ZSTD, bytes(80 << 20))),
        ErrorCode.CORRUPT_MESSAGE),
    "a transactional batch whose count lies": (
        lambda: reframe_batch(encode_batch([(None, b"v")], is_transactional=True, producer_id=5,
                                           producer_epoch=0, base_sequence=0),
                              records_count=2, last_offset_delta=1),
        ErrorCode.INVALID_RECORD),
}


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[PartitionReplica]:
    flusher = Flusher()
    log = AsyncLog(PartitionLog.open(str(tmp_path / "t-0"), LogConfig()), flusher)
    try:
        yield PartitionReplica("t", 0, log)
    finally:
        log.close()
        flusher.stop()


def _records_in(replica: PartitionReplica) -> list[tuple[int, bytes | None]]:
    data = replica.log.log.read(0, 1 << 30).data
    out = []
    pos = 0
    while pos < len(data):
        header, records = decode_records(data, pos)
        out += [(header.base_offset + r.offset_delta, r.value) for r in records]
        pos += header.size
    return out


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_batch_is_refused_and_the_next_lands_at_the_next_offset(
    replica: PartitionReplica, lie: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.partitions.replica")
    build, code = LIES[lie]
    assert asyncio.run(replica.append(_good(2), epoch=0)).base_offset == 0
    refused = asyncio.run(replica.append(build(), epoch=0))
    assert refused.error == code, refused
    assert refused.message
    assert replica.log_end_offset == 2
    assert "t-0: refused produce: " in caplog.text
    after = asyncio.run(replica.append(_good(1), epoch=0))
    assert (after.error, after.base_offset) == (ErrorCode.NONE, 2)
    assert _records_in(replica) == [(0, b"v0"), (1, b"v1"), (2, b"v0")]


def test_a_checked_batch_is_appended_without_a_second_check(replica: PartitionReplica) -> None:
    checked = asyncio.run(replica.check(_good(4, Compression.GZIP)))
    assert isinstance(checked, CheckedBatch) and checked.header.records_count == 4
    assert asyncio.run(replica.append(checked, epoch=0)).base_offset == 0
    assert replica.log_end_offset == 4


def test_many_records_are_walked_in_slices_that_let_other_tasks_run(
    replica: PartitionReplica,
) -> None:
    count = 100_000  # tiny records: under 1 MiB, about a tenth of a second of walking
    batch = encode_batch([(None, b"")] * count)

    async def run() -> tuple[object, int]:
        done = False
        turns = 0

        async def other_task() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        turns = 0
        outcome = await replica.append(batch, epoch=0)
        done = True
        await ticker
        return outcome, turns

    outcome, turns = asyncio.run(run())
    assert getattr(outcome, "base_offset", None) == 0
    assert turns >= count // SLICE_RECORDS - 1


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.ZSTD])
def test_a_section_larger_than_the_inline_limit_is_checked_off_the_loop(
    replica: PartitionReplica, codec: Compression
) -> None:
    # Repetitive values compress far below max.message.bytes, and expand past the
    # inline limit: decompressed again, with the full bound, on a worker thread.
    values = [bytes([i % 7]) * 1000 for i in range(4 * INLINE_SECTION_BYTES // 1000)]
    batch = encode_batch([(None, v) for v in values], compression=codec)
    assert len(batch) < INLINE_SECTION_BYTES
    outcome = asyncio.run(replica.append(batch, epoch=0))
    assert (outcome.error, replica.log_end_offset) == (ErrorCode.NONE, len(values))
    lying = reframe_batch(batch, records_count=len(values) + 1, last_offset_delta=len(values))
    refused = asyncio.run(replica.append(lying, epoch=0))
    assert refused.error == ErrorCode.INVALID_RECORD
    assert replica.log_end_offset == len(values)


def _expanding(size: int, codec: Compression = Compression.GZIP) -> bytes:
    """An honest compressed batch whose records take about ``size`` bytes decompressed."""
    return encode_batch([(None, bytes([i % 5]) * 1000) for i in range(size // 1000)],
                        compression=codec)


@pytest.mark.parametrize("size", [1 << 20, 4 << 20])
def test_a_compressed_section_is_held_to_the_bound_on_and_off_the_loop(size: int) -> None:
    # Below the inline limit on the loop, above it on a worker thread: either way, a
    # section that expands past the topic's bound is refused, and one within it passes.
    batch = _expanding(size)
    header = validate_batch(batch)
    asyncio.run(check_contents(batch, header, size + (64 << 10)))
    with pytest.raises(DecompressedTooLargeError):
        asyncio.run(check_contents(batch, header, size - (64 << 10)))


def test_an_uncompressed_batch_is_walked_whatever_the_bound() -> None:
    # max.message.bytes bounds it already; the decompression bound does not apply.
    batch = encode_batch([(None, b"v" * 1000)] * 10)
    asyncio.run(check_contents(batch, validate_batch(batch), 100))
    lying = reframe_batch(batch, records_count=11, last_offset_delta=10)
    with pytest.raises(InvalidRecordError):
        asyncio.run(check_contents(lying, validate_batch(lying), 1 << 20))


def test_big_sections_share_one_bounded_set_of_slots_per_loop() -> None:
    async def slots() -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        return _big_section_slot(), _big_section_slot()

    first, again = asyncio.run(slots())
    assert first is again
    assert first._value == BIG_SECTIONS_AT_ONCE
    other, _ = asyncio.run(slots())
    assert other is not first
