"""Record batch v2 headers: parsing, validation and the in-place edits a broker makes.

Layout (big-endian): baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
producerId i64, producerEpoch i16, baseSequence i32, recordsCount i32, then the records.
The CRC-32C covers everything from ``attributes`` to the end of the batch, so the broker
can assign ``baseOffset`` and ``partitionLeaderEpoch`` without recomputing it.
None of this copies the records: every function works on a buffer and a position.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from crc32c import crc32c

from .exceptions import (
    CorruptRecordError,
    InvalidRecordError,
    LegacyMessageSetError,
    UnsupportedCompressionError,
)

Buffer = bytes | bytearray | memoryview

BATCH_HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset(8) + batchLength(4): the bytes not counted by batchLength
MAGIC = 2

# Offsets of fields inside a batch, relative to its first byte.
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35
RECORDS_OFFSET = BATCH_HEADER_SIZE

# batchLength counts from partitionLeaderEpoch on, so an empty batch has this length.
MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD

# length, attributes, timestampDelta, offsetDelta, keyLength, valueLength, headerCount:
# one byte each at the least.
MIN_RECORD_SIZE = 7

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
DELETE_HORIZON_BIT = 0x40

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
NO_TIMESTAMP = -1
INT32_MAX = (1 << 31) - 1

HEADER_STRUCT = struct.Struct(">qiibIhiqqqhii")
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
UINT32_STRUCT = struct.Struct(">I")
_INT16 = struct.Struct(">h")
assert HEADER_STRUCT.size == BATCH_HEADER_SIZE


class Compression(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


_NO_CODEC = int(Compression.NONE)
_HIGHEST_CODEC = int(Compression.ZSTD)


class TimestampType(IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        codec = self.attributes & COMPRESSION_MASK
        try:
            return Compression(codec)
        except ValueError:
            raise UnsupportedCompressionError(f"unknown compression codec {codec}") from None

    @property
    def timestamp_type(self) -> TimestampType:
        if self.attributes & TIMESTAMP_TYPE_BIT:
            return TimestampType.LOG_APPEND_TIME
        return TimestampType.CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last record; sequences wrap from INT32_MAX to 0."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return _increment_sequence(self.base_sequence, self.last_offset_delta)


def _increment_sequence(sequence: int, increment: int) -> int:
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def _refuse_legacy(buf: Buffer, pos: int, magic: int) -> LegacyMessageSetError:
    offset, size = _OFFSET_AND_LENGTH.unpack_from(buf, pos)
    return LegacyMessageSetError(
        f"message set v{magic} (the format before Kafka 0.11) at offset {offset}, "
        f"message size {size}: only record batch v2 is accepted; "
        "upgrade the client or enable its v2 message format"
    )


def parse_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Read the 61-byte header of the batch at ``pos`` without looking at its records."""
    available = len(buf) - pos
    if pos < 0 or available < BATCH_HEADER_SIZE:
        if pos >= 0 and available > MAGIC_OFFSET and buf[pos + MAGIC_OFFSET] in (0, 1):
            raise _refuse_legacy(buf, pos, buf[pos + MAGIC_OFFSET])
        raise CorruptRecordError(
            f"record batch header needs {BATCH_HEADER_SIZE} bytes, {max(available, 0)} available"
        )
    header = BatchHeader(*HEADER_STRUCT.unpack_from(buf, pos))
    if header.magic != MAGIC:
        if header.magic in (0, 1):
            raise _refuse_legacy(buf, pos, header.magic)
        raise CorruptRecordError(f"unknown record batch magic {header.magic}")
    if header.batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch length {header.batch_length} is below the minimum {MIN_BATCH_LENGTH}"
        )
    return header


def compute_crc(buf: Buffer, pos: int = 0) -> int:
    """CRC-32C of the batch at ``pos`` over its CRC scope (attributes to the end)."""
    header = parse_header(buf, pos)
    end = pos + header.size
    if end > len(buf):
        raise CorruptRecordError(f"batch of {header.size} bytes truncated to {len(buf) - pos}")
    return _crc_of(buf, pos, end)


def _crc_of(buf: Buffer, pos: int, end: int) -> int:
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return crc32c(view[pos + ATTRIBUTES_OFFSET : end])


def validate_batch(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Check everything about the batch at ``pos`` that can be checked without decompressing."""
    # This runs for every produced batch: fields are checked as locals and the header
    # object is built once, at the end; parse_header supplies the error for a bad start.
    if pos < 0 or len(buf) - pos < BATCH_HEADER_SIZE:
        parse_header(buf, pos)
    fields = HEADER_STRUCT.unpack_from(buf, pos)
    (base_offset, batch_length, _, magic, crc, attributes, last_offset_delta) = fields[:7]
    count = fields[12]
    if magic != MAGIC or batch_length < MIN_BATCH_LENGTH:
        parse_header(buf, pos)
    end = pos + batch_length + LOG_OVERHEAD
    if end > len(buf):
        raise CorruptRecordError(
            f"batch of {batch_length + LOG_OVERHEAD} bytes truncated to {len(buf) - pos}"
        )
    view = buf if type(buf) is memoryview else memoryview(buf)
    actual = crc32c(view[pos + ATTRIBUTES_OFFSET : end])
    if actual != crc:
        raise CorruptRecordError(
            f"CRC mismatch in batch at offset {base_offset}: "
            f"stored {crc:#010x}, computed {actual:#010x}"
        )
    codec = attributes & COMPRESSION_MASK
    if codec > _HIGHEST_CODEC:
        raise UnsupportedCompressionError(f"unknown compression codec {codec}")
    if count < 0:
        raise CorruptRecordError(f"negative records count {count}")
    if last_offset_delta != count - 1:
        raise InvalidRecordError(
            f"last offset delta {last_offset_delta} does not match records count {count}"
        )
    payload = batch_length - MIN_BATCH_LENGTH
    # A count the records cannot bear out is the batch's own lie, not damage (the CRC
    # matched): INVALID_RECORD, as Kafka answers "Incorrect declared batch size".
    if codec == _NO_CODEC:
        # Each uncompressed record takes at least MIN_RECORD_SIZE bytes; checking this here
        # keeps a tiny batch from claiming a huge offset range without decoding its records.
        if count > payload // MIN_RECORD_SIZE:
            raise InvalidRecordError(f"{count} records cannot fit in {payload} bytes of records")
    elif count > 0 and payload == 0:
        raise InvalidRecordError(f"{count} records announced in an empty batch")
    return BatchHeader(*fields)


def iter_batches(
    buf: Buffer, *, validate: bool = True, allow_partial_tail: bool = False
) -> Iterator[tuple[int, BatchHeader]]:
    """Walk concatenated batches, yielding (position, header) for each.

    A batch cut short at the end raises CorruptRecordError, unless ``allow_partial_tail``
    is set: then the walk stops quietly before it (a fetch response cut at its size limit,
    or the torn tail of a log file after a crash).
    """
    total = len(buf)
    pos = 0
    while pos < total:
        remaining = total - pos
        if allow_partial_tail:
            if remaining < BATCH_HEADER_SIZE:
                return
            header = parse_header(buf, pos)
            if header.size > remaining:
                return
            if validate:
                header = validate_batch(buf, pos)
        elif validate:
            header = validate_batch(buf, pos)
        else:
            header = parse_header(buf, pos)
            if header.size > remaining:
                raise CorruptRecordError(f"batch of {header.size} bytes truncated to {remaining}")
        yield pos, header
        pos += header.size


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Assign the batch's first offset in place (outside the CRC scope)."""
    _INT64.pack_into(buf, pos, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Stamp the leader epoch in place (outside the CRC scope)."""
    _INT32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, timestamp_ms: int) -> None:
    """Mark the batch as stamped with the broker's time, as Kafka does for LogAppendTime topics.

    Consumers then take every record's timestamp from ``maxTimestamp``; both fields are
    inside the CRC scope, so the CRC is recomputed.
    """
    header = parse_header(buf, pos)
    end = pos + header.size
    if end > len(buf):
        raise CorruptRecordError(f"batch of {header.size} bytes truncated to {len(buf) - pos}")
    _INT16.pack_into(buf, pos + ATTRIBUTES_OFFSET, header.attributes | TIMESTAMP_TYPE_BIT)
    _INT64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, timestamp_ms)
    UINT32_STRUCT.pack_into(buf, pos + CRC_OFFSET, _crc_of(buf, pos, end))
