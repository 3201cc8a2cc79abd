"""Records inside a v2 batch: decoding them for tools, tests and consumers of our own data,
and encoding them for batches the broker writes itself.

The produce and fetch paths never come here: they move whole batches as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .batch import BATCH_HEADER_SIZE, BatchHeader, Buffer, Compression, validate_batch
from .codecs import DEFAULT_MAX_DECOMPRESSED, decompress
from .exceptions import CorruptRecordError, InvalidRecordError
from .varint import read_varint, read_varlong, write_varint


@dataclass(slots=True)
class Header:
    key: str
    value: bytes | None


@dataclass(slots=True)
class Record:
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)
    attributes: int = 0


def decode_records(
    buf: Buffer, pos: int = 0, *, max_size: int = DEFAULT_MAX_DECOMPRESSED
) -> tuple[BatchHeader, list[Record]]:
    """Validate the batch at ``pos``, decompress it if needed and decode every record."""
    header = validate_batch(buf, pos)
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    section = view[pos + BATCH_HEADER_SIZE : pos + header.size]
    if header.compression == Compression.NONE:
        data = bytes(section)
    else:
        data = decompress(header.compression, section, max_size=max_size)
    return header, _decode_section(data, header.records_count)


def validate_records(
    buf: Buffer, pos: int = 0, *, max_size: int = DEFAULT_MAX_DECOMPRESSED
) -> BatchHeader:
    """The deep check: everything validate_batch does, plus every record decodes and
    the records' offset deltas run 0, 1, 2, ... as the batch's offsets promise."""
    header, records = decode_records(buf, pos, max_size=max_size)
    for index, record in enumerate(records):
        if record.offset_delta != index:
            raise InvalidRecordError(
                f"record {index} has offset delta {record.offset_delta}, expected {index}"
            )
    return header


def _decode_section(data: bytes, count: int) -> list[Record]:
    records: list[Record] = []
    pos = 0
    end = len(data)
    for index in range(count):
        if pos >= end:
            raise InvalidRecordError(f"batch announces {count} records but holds {index}")
        length, pos = read_varint(data, pos)
        if length < 0:
            raise InvalidRecordError(f"record {index} has negative length {length}")
        record_end = pos + length
        if record_end > end:
            raise CorruptRecordError(f"record {index} of {length} bytes runs past the batch")
        try:
            record, pos = _decode_record(data, pos, record_end)
        except CorruptRecordError as exc:
            # Inside a record whose length fits the batch, a bad field is a bad record.
            raise InvalidRecordError(f"record {index}: {exc.reason}") from None
        if pos != record_end:
            raise InvalidRecordError(
                f"record {index} declares {length} bytes but its fields take {length + pos - record_end}"
            )
        records.append(record)
    if pos != end:
        raise InvalidRecordError(f"{end - pos} bytes follow the last of {count} records")
    return records


def _decode_record(data: bytes, pos: int, end: int) -> tuple[Record, int]:
    # Fields are read from a slice ending at the record's end, so no field can borrow
    # bytes from the next record.
    if pos >= end:
        raise CorruptRecordError("record is empty")
    attributes = data[pos]
    timestamp_delta, pos = read_varlong(data, pos + 1)
    offset_delta, pos = read_varint(data, pos)
    key, pos = _read_bytes(data, pos, end, "key")
    value, pos = _read_bytes(data, pos, end, "value")
    header_count, pos = read_varint(data, pos)
    if header_count < 0:
        raise CorruptRecordError(f"negative header count {header_count}")
    headers: list[Header] = []
    for _ in range(header_count):
        raw_key, pos = _read_bytes(data, pos, end, "header key")
        if raw_key is None:
            raise CorruptRecordError("null header key")
        try:
            header_key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError("header key is not UTF-8") from None
        header_value, pos = _read_bytes(data, pos, end, "header value")
        headers.append(Header(header_key, header_value))
    if pos > end:
        raise CorruptRecordError("record fields run past its length")
    return Record(offset_delta, timestamp_delta, key, value, headers, attributes), pos


def _read_bytes(data: bytes, pos: int, end: int, what: str) -> tuple[bytes | None, int]:
    length, pos = read_varint(data, pos)
    if length == -1:
        return None, pos
    if length < -1:
        raise CorruptRecordError(f"{what} has negative length {length}")
    if pos + length > end:
        raise CorruptRecordError(f"{what} of {length} bytes runs past the record")
    return data[pos : pos + length], pos + length


def encode_record(out: bytearray, record: Record) -> None:
    """Append one record, length-prefixed, to ``out``."""
    body = bytearray()
    body.append(record.attributes & 0xFF)
    write_varint(body, record.timestamp_delta)
    write_varint(body, record.offset_delta)
    _write_bytes(body, record.key)
    _write_bytes(body, record.value)
    write_varint(body, len(record.headers))
    for header in record.headers:
        _write_bytes(body, header.key.encode("utf-8"))
        _write_bytes(body, header.value)
    write_varint(out, len(body))
    out += body


def _write_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        write_varint(out, -1)
        return
    write_varint(out, len(value))
    out += value
