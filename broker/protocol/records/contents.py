"""Checking that a batch's records say what its header says, as Kafka's LogValidator does
before it stores a produced batch.

validate_batch trusts the header once its CRC matches; but the CRC is the producer's, so
a header can lie consistently: a records count the records do not bear out, offset
deltas that skip or repeat, a compressed section that is garbage or a zip bomb. Stored,
such a batch makes consumers loop on it or see one offset twice. So every produced
batch has its records section (decompressed, within a bound) walked here once.

The walk decodes lengths and the few fields needed to step over each record, builds no
objects, and can stop after a number of records and resume, so a caller with an event
loop can check a large batch in slices. Anything it accepts, ``decode_records`` decodes
with offset deltas 0, 1, 2, ... (a test holds the two to that).
"""

from __future__ import annotations

from .batch import (
    BATCH_HEADER_SIZE,
    MIN_RECORD_SIZE,
    BatchHeader,
    Buffer,
    Compression,
    validate_batch,
)
from .codecs import DEFAULT_MAX_DECOMPRESSED, decompress
from .exceptions import CorruptRecordError, InvalidRecordError
from .varint import read_varint, read_varlong

Section = bytes | memoryview

# A header is a key length and a value length at the least.
_MIN_HEADER_SIZE = 2
# What follows a record's length: attributes, timestampDelta, offsetDelta, keyLength,
# valueLength, headersCount, a byte each at the least.
_MIN_RECORD_BODY = MIN_RECORD_SIZE - 1
# One-byte zigzag varints, decoded.
_ZIGZAG = tuple((b >> 1) ^ -(b & 1) for b in range(0x80))


def records_section(
    buf: Buffer, pos: int, header: BatchHeader, *, max_size: int = DEFAULT_MAX_DECOMPRESSED
) -> Section:
    """The batch's records as a consumer reads them: decompressed, never over ``max_size``
    bytes (CorruptRecordError beyond it, or when the data does not decompress)."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    payload = view[pos + BATCH_HEADER_SIZE : pos + header.size]
    codec = header.compression
    if codec == Compression.NONE:
        return payload
    return decompress(codec, payload, max_size=max_size)


def check_records_count(section: Section, count: int) -> None:
    """The header's count before any record is walked: none, or more than fit."""
    if count <= 0:
        raise InvalidRecordError("a record batch must hold at least one record")
    if count > len(section) // MIN_RECORD_SIZE:
        raise InvalidRecordError(
            f"batch announces {count} records, but its {len(section)} bytes of records "
            f"hold {len(section) // MIN_RECORD_SIZE} at the most"
        )


def check_records(
    section: Section, count: int, *, position: int = 0, first: int = 0, stop: int | None = None
) -> int:
    """Walk records ``first`` up to ``stop`` (default: ``count``) of an uncompressed
    section, the first of them at ``position``; returns the position after them.

    Each record's fields must fill exactly its declared length, its offset delta must be
    its index, and once record ``count - 1`` is walked nothing may follow it. Every
    failure is InvalidRecordError: the bytes arrived intact (the CRC matched) but do
    not describe the records the header announces.
    """
    data = section
    end = len(data)
    last = count if stop is None else min(stop, count)
    pos = position
    index = first
    zigzag = _ZIGZAG
    # This loop runs once per produced record, so it is written for CPython's sake:
    # varints of one byte (values -64..63: most fields) come from a table, those of two
    # (a value up to 8 KiB long) are decoded inline, longer ones go through read_varint,
    # which also refuses over-long encodings. A field that runs off the end of the
    # section raises IndexError, caught once outside the loop.
    try:
        while index < last:
            if pos >= end:
                raise InvalidRecordError(f"batch announces {count} records but holds {index}")
            b = data[pos]
            if b < 0x80:
                length = zigzag[b]
                pos += 1
            elif data[pos + 1] < 0x80:
                raw = (b & 0x7F) | (data[pos + 1] << 7)
                length = (raw >> 1) ^ -(raw & 1)
                pos += 2
            else:
                length, pos = read_varint(data, pos)
            record_end = pos + length
            if length < _MIN_RECORD_BODY or record_end > end:
                raise InvalidRecordError(
                    f"record {index} declares {length} bytes, with {end - pos} left in the batch"
                )
            pos += 1  # attributes: no bits are defined for records
            if data[pos] < 0x80:  # timestampDelta
                pos += 1
            else:
                pos = read_varlong(data, pos)[1]
            b = data[pos]
            if b < 0x80:
                delta = zigzag[b]
                pos += 1
            else:
                delta, pos = read_varint(data, pos)
            if delta != index:
                raise InvalidRecordError(
                    f"record {index} has offset delta {delta}; Kafka requires {index}"
                )
            b = data[pos]  # key length
            if b < 0x80:
                size = zigzag[b]
                pos += 1
            elif data[pos + 1] < 0x80:
                raw = (b & 0x7F) | (data[pos + 1] << 7)
                size = (raw >> 1) ^ -(raw & 1)
                pos += 2
            else:
                size, pos = read_varint(data, pos)
            if size > 0:
                pos += size
            elif size < -1:
                raise InvalidRecordError(f"record {index} has key length {size}")
            b = data[pos]  # value length
            if b < 0x80:
                size = zigzag[b]
                pos += 1
            elif data[pos + 1] < 0x80:
                raw = (b & 0x7F) | (data[pos + 1] << 7)
                size = (raw >> 1) ^ -(raw & 1)
                pos += 2
            else:
                size, pos = read_varint(data, pos)
            if size > 0:
                pos += size
            elif size < -1:
                raise InvalidRecordError(f"record {index} has value length {size}")
            if pos >= record_end:
                raise InvalidRecordError(f"record {index}: its key or value runs past the record")
            if data[pos] == 0:  # no headers
                pos += 1
            else:
                headers, pos = read_varint(data, pos)
                pos = _check_headers(data, pos, record_end, headers, index)
            if pos != record_end:
                raise InvalidRecordError(
                    f"record {index} declares {length} bytes but its fields take "
                    f"{length + pos - record_end}"
                )
            index += 1
    except IndexError:
        raise InvalidRecordError(f"record {index} runs past the end of the batch") from None
    except CorruptRecordError as exc:
        # A malformed varint inside records whose batch CRC matched.
        raise InvalidRecordError(f"record {index}: {exc.reason}") from None
    if index == count and pos != end:
        raise InvalidRecordError(f"{end - pos} bytes follow the last of {count} records")
    return pos


def _check_headers(data: Section, pos: int, record_end: int, headers: int, index: int) -> int:
    if headers < 0 or headers * _MIN_HEADER_SIZE > record_end - pos:
        raise InvalidRecordError(f"record {index} announces {headers} headers")
    for _ in range(headers):
        size, pos = read_varint(data, pos)
        if size < 0:
            raise InvalidRecordError(f"record {index} has a header key of length {size}")
        if pos + size > record_end:
            raise InvalidRecordError(f"record {index}: a header key runs past the record")
        try:
            str(data[pos : pos + size], "utf-8")
        except UnicodeDecodeError:
            raise InvalidRecordError(f"record {index} has a header key that is not UTF-8") from None
        pos += size
        size, pos = read_varint(data, pos)
        if size > 0:
            pos += size
        elif size < -1:
            raise InvalidRecordError(f"record {index} has a header value of length {size}")
        if pos > record_end:
            raise InvalidRecordError(f"record {index}: a header value runs past the record")
    return pos


def check_batch_contents(
    buf: Buffer, pos: int = 0, *, max_uncompressed: int = DEFAULT_MAX_DECOMPRESSED
) -> BatchHeader:
    """validate_batch, then the whole walk in one go: for tools, tests and callers that
    need no slicing. Raises RecordError; returns the header."""
    header = validate_batch(buf, pos)
    section = records_section(buf, pos, header, max_size=max_uncompressed)
    check_records_count(section, header.records_count)
    check_records(section, header.records_count)
    return header
