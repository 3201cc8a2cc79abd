"""Building complete v2 batches: valid ones for control batches, tools and tests, and
consistently lying ones for tests of what refuses them."""

from __future__ import annotations

import time
from collections.abc import Sequence

from crc32c import crc32c

from .batch import (
    ATTRIBUTES_OFFSET,
    BATCH_HEADER_SIZE,
    COMPRESSION_MASK,
    CONTROL_BIT,
    CRC_OFFSET,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    MAGIC,
    NO_TIMESTAMP,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    UINT32_STRUCT,
    Compression,
    TimestampType,
)
from .codecs import compress
from .record import Record, encode_record

KeyValue = tuple[bytes | None, bytes | None]


def encode_batch(
    records: Sequence[Record | KeyValue],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    base_timestamp: int | None = None,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Encode ``records`` as one batch with its lengths, max timestamp and CRC filled in.

    ``(key, value)`` pairs get offset deltas 0, 1, 2, ... and the base timestamp; Record
    objects keep the deltas they carry, and the batch's last offset delta is the last
    record's, so a caller can also build inconsistent batches on purpose.
    """
    if base_timestamp is None:
        base_timestamp = time.time_ns() // 1_000_000
    normalised = [
        item if isinstance(item, Record) else Record(index, 0, item[0], item[1])
        for index, item in enumerate(records)
    ]
    section = bytearray()
    for record in normalised:
        encode_record(section, record)
    payload = compress(compression, section) if compression != Compression.NONE else bytes(section)

    if normalised:
        last_offset_delta = normalised[-1].offset_delta
        max_timestamp = base_timestamp + max(r.timestamp_delta for r in normalised)
    else:
        last_offset_delta = -1
        max_timestamp = NO_TIMESTAMP
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        max_timestamp = base_timestamp
    attributes = int(compression)
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_BIT
    if is_transactional:
        attributes |= TRANSACTIONAL_BIT
    if is_control:
        attributes |= CONTROL_BIT

    batch = bytearray(BATCH_HEADER_SIZE + len(payload))
    HEADER_STRUCT.pack_into(
        batch,
        0,
        base_offset,
        len(batch) - LOG_OVERHEAD,
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(normalised),
    )
    batch[BATCH_HEADER_SIZE:] = payload
    UINT32_STRUCT.pack_into(batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


def reframe_batch(
    batch: bytes,
    *,
    records_count: int | None = None,
    last_offset_delta: int | None = None,
    compression: Compression | None = None,
    section: bytes | None = None,
) -> bytes:
    """A copy of ``batch`` with header fields or its records section replaced, its
    length and CRC made to match: a batch whose header lies consistently, for tests
    and tools that check what a broker does with one. ``section`` is taken as it is
    (compress it first to pass it off as compressed)."""
    out = bytearray(batch)
    if section is not None:
        out[BATCH_HEADER_SIZE:] = section
    fields = list(HEADER_STRUCT.unpack_from(out, 0))
    fields[1] = len(out) - LOG_OVERHEAD
    if compression is not None:
        fields[5] = (fields[5] & ~COMPRESSION_MASK) | int(compression)
    if last_offset_delta is not None:
        fields[6] = last_offset_delta
    if records_count is not None:
        fields[12] = records_count
    HEADER_STRUCT.pack_into(out, 0, *fields)
    UINT32_STRUCT.pack_into(out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)
