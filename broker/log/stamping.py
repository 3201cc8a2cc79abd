"""Preparing an append: offsets and epoch assigned without copying the records.

Each batch goes to disk as two pieces: a fresh 16-byte head (baseOffset, batchLength,
partitionLeaderEpoch) and the caller's bytes from the magic byte on, by reference, in one
vectored write. Both rewritten fields sit outside the CRC, so the stored batch is valid.
Only LogAppendTime topics need a real copy, because their timestamp is inside the CRC.
"""

from __future__ import annotations

import struct

from broker.log.errors import InvalidAppendError, RecordTooLargeError
from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    RecordError,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes,
# lastOffsetDelta, baseTimestamp, maxTimestamp: the first 43 bytes of a v2 batch.
_FIELDS = struct.Struct(">qiibIhiqq")
_HEAD = struct.Struct(">qii")
_MAGIC = 2
_MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD

Chunk = bytes | bytearray | memoryview


# batchLength, magic, lastOffsetDelta and maxTimestamp in one unpack (the one-batch path).
_SCAN = struct.Struct(">8xi4xb6xi8xq")


def prepare_single(
    batches: bytes | bytearray | memoryview, first_offset: int, epoch: int, max_batch_bytes: int
) -> tuple[bytes, memoryview, int, int, int] | None:
    """The common case of a producer's append, exactly one well-framed batch and no
    LogAppendTime: (head to write, rest of the caller's bytes, size, next offset, max
    timestamp). None for anything else; prepare_append then checks the bytes in full and
    says what is wrong. Kept apart because this runs once per produced batch."""
    if type(batches) is memoryview:
        if batches.format != "B" or batches.ndim != 1:
            return None
        view = batches
    else:
        view = memoryview(batches)
    total = len(view)
    if total < BATCH_HEADER_SIZE:
        return None
    length, magic, last_delta, max_timestamp = _SCAN.unpack_from(view)
    if (
        length + LOG_OVERHEAD != total
        or magic != _MAGIC
        or length < _MIN_BATCH_LENGTH
        or last_delta < 0
        or total > max_batch_bytes
    ):
        return None
    head = _HEAD.pack(first_offset, length, epoch)
    return head, view[_HEAD.size :], total, first_offset + last_delta + 1, max_timestamp


# Where one batch will sit, relative to the start of its append, and its offsets:
# (position, size, base_offset, next_offset, max_timestamp). A plain tuple, because
# this is built once per batch on the produce path.
BatchSpan = tuple[int, int, int, int, int]


def prepare_append(
    batches: bytes | bytearray | memoryview,
    first_offset: int,
    epoch: int,
    max_batch_bytes: int,
    log_append_time: int | None,
) -> tuple[list[Chunk], list[BatchSpan], int]:
    """Check the framing of each batch and lay out what to write: (chunks to write,
    spans, total size). The caller's buffer is never modified."""
    if isinstance(batches, memoryview):
        view = batches if batches.format == "B" and batches.ndim == 1 else batches.cast("B")
    else:
        view = memoryview(batches)
    total = len(view)
    if total == 0:
        raise InvalidAppendError("append of zero bytes")
    chunks: list[Chunk] = []
    spans: list[BatchSpan] = []
    offset = first_offset
    pos = 0
    head_len = _HEAD.size
    while pos < total:
        if total - pos < BATCH_HEADER_SIZE:
            raise InvalidAppendError(f"{total - pos} stray bytes at the end of the append")
        _, length, _, magic, _, _, last_delta, _, max_timestamp = _FIELDS.unpack_from(view, pos)
        if magic != _MAGIC or length < _MIN_BATCH_LENGTH:
            try:
                parse_header(view, pos)
            except RecordError as exc:
                raise InvalidAppendError(
                    f"not a record batch at byte {pos}: {exc.reason}"
                ) from None
            raise InvalidAppendError(f"not a record batch at byte {pos}")
        size = length + LOG_OVERHEAD
        if pos + size > total:
            raise InvalidAppendError(f"batch at byte {pos} runs past the end of the append")
        if size > max_batch_bytes:
            raise RecordTooLargeError(
                f"batch of {size} bytes exceeds max.message.bytes {max_batch_bytes}"
            )
        if last_delta < 0:
            raise InvalidAppendError(f"batch at byte {pos} has no records")
        if log_append_time is None:
            chunks.append(_HEAD.pack(offset, length, epoch))
            chunks.append(view[pos + head_len : pos + size])
        else:
            copy = bytearray(view[pos : pos + size])
            set_base_offset(copy, 0, offset)
            set_partition_leader_epoch(copy, 0, epoch)
            set_log_append_time(copy, 0, log_append_time)
            chunks.append(copy)
            max_timestamp = log_append_time
        next_offset = offset + last_delta + 1
        spans.append((pos, size, offset, next_offset, max_timestamp))
        offset = next_offset
        pos += size
    return chunks, spans, total
