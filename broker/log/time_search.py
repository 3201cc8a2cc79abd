"""The per-record look inside one stored batch, for ListOffsets by time, bounded.

A batch's header says its largest timestamp, so finding the batch a time lands in needs
no records. Inside it, Kafka's answer is the first record whose timestamp reaches the
target, which takes a per-record look; but a compressed batch of under a megabyte can
hold millions of records, and decoding them all into objects once took 74 s and 1.5 GB.
So the look reads only the two varints each record starts with, stops at the first
match, and stops for good after `max_records` records or `max_bytes` of decompressed
data. Where it cannot finish (the bound, or records that do not decode) it answers a
*conservative* offset instead: one at or before the exact answer, with every record
before it older than the target, so a consumer that seeks there misses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    Compression,
    CorruptRecordError,
    RecordError,
    TimestampType,
    decompress,
    parse_header,
    validate_batch,
)
from broker.protocol.records.varint import read_varint, read_varlong

# Scanning a record costs about a microsecond: 100,000 keep one look near 0.1 s (run off
# the event loop all the same).
SCAN_RECORDS = 100_000
# Decompressed bytes read at most: 16 MiB is far above what a 1 MiB batch of ordinary
# records inflates to, and far below what a crafted one can (the codec allows 64 MiB).
SCAN_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchMatch:
    offset: int
    timestamp: int
    # None when exact; otherwise why the offset is a conservative stand-in.
    approximate: str | None = None


def first_record_at(
    raw: bytes | memoryview,
    timestamp: int,
    start: int,
    *,
    max_records: int = SCAN_RECORDS,
    max_bytes: int = SCAN_BYTES,
) -> BatchMatch | None:
    """The first record of the batch `raw` at or after offset `start` whose timestamp is
    >= `timestamp`; None when the batch has no such record.

    Meant for a batch whose header's max timestamp reaches `timestamp`: a stand-in
    answer carries that max timestamp, the time of a record at or after its offset.
    On a LogAppendTime batch every record carries the header's max timestamp.
    """
    try:
        header = validate_batch(raw)
    except RecordError as exc:
        # The log checked this header when it stored or recovered the batch, so its
        # offsets stand even where its records cannot be trusted.
        try:
            header = parse_header(raw)
        except RecordError:
            return None
        return _stand_in(header, start, f"batch does not validate: {exc.reason}")
    if max(header.base_offset, start) >= header.next_offset:
        return None
    if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
        return BatchMatch(max(header.base_offset, start), header.max_timestamp)
    try:
        return _scan(raw, header, timestamp, start, max_records, max_bytes)
    except RecordError as exc:
        # Inflating past max_bytes lands here too: the same stand-in serves.
        return _stand_in(header, start, f"records unreadable: {exc.reason}")


def _stand_in(header: BatchHeader, start: int, why: str) -> BatchMatch | None:
    first = max(header.base_offset, start)
    if first >= header.next_offset:
        return None
    return BatchMatch(first, header.max_timestamp, why)


def _records_section(raw: bytes | memoryview, header: BatchHeader, max_bytes: int) -> bytes:
    view = raw if isinstance(raw, memoryview) else memoryview(raw)
    section = view[BATCH_HEADER_SIZE : header.size]
    if header.compression == Compression.NONE:
        # Stored uncompressed, the section is at most the batch: no bound needed.
        return bytes(section)
    return decompress(header.compression, section, max_size=max_bytes)


def _scan(
    raw: bytes | memoryview,
    header: BatchHeader,
    timestamp: int,
    start: int,
    max_records: int,
    max_bytes: int,
) -> BatchMatch | None:
    data = _records_section(raw, header, max_bytes)
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    end = len(data)
    pos = 0
    scanned = min(header.records_count, max_records)
    try:
        for index in range(scanned):
            # Each varint is read inline when it takes one byte, the common case for
            # lengths of small records and for deltas: this loop is the whole cost.
            byte = data[pos]
            if byte < 0x80:
                length, body = (byte >> 1) ^ -(byte & 1), pos + 1
            else:
                length, body = read_varint(data, pos)
            record_end = body + length
            if length <= 0 or record_end > end:
                raise CorruptRecordError(f"record {index} has a bad length {length}")
            byte = data[body + 1]
            if byte < 0x80:
                timestamp_delta, after = (byte >> 1) ^ -(byte & 1), body + 2
            else:
                timestamp_delta, after = read_varlong(data, body + 1)
            offset_delta, _ = read_varint(data, after)
            offset = base_offset + offset_delta
            record_timestamp = base_timestamp + timestamp_delta
            if record_timestamp >= timestamp and offset >= start:
                return BatchMatch(offset, record_timestamp)
            pos = record_end
    except IndexError:
        raise CorruptRecordError("a record runs past the batch") from None
    if scanned == header.records_count:
        return None
    # A stored batch's offsets are dense (its last offset delta is its record count - 1,
    # checked on append), so the first record not looked at has this offset.
    return _stand_in(
        header,
        max(base_offset + scanned, start),
        f"stopped after {scanned} of {header.records_count} records",
    )
