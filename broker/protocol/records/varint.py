"""Zigzag varints as used inside records (the same encoding as protobuf's sint32/sint64)."""

from __future__ import annotations

from .exceptions import CorruptRecordError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def read_varint(buf: bytes | memoryview, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Decode one zigzag varint at ``pos``; returns (value, position after it).

    ``max_bytes`` is 5 for a varint (int32) and 10 for a varlong (int64); a longer
    encoding is corrupt, as is one that runs past the end of ``buf``.
    """
    try:
        byte = buf[pos]
        if byte < 0x80:
            return (byte >> 1) ^ -(byte & 1), pos + 1
        raw = byte & 0x7F
        shift = 7
        end = pos + max_bytes
        pos += 1
        while True:
            if pos >= end:
                raise CorruptRecordError(f"varint longer than {max_bytes} bytes")
            byte = buf[pos]
            pos += 1
            raw |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
    except IndexError:
        raise CorruptRecordError("varint runs past the end of the data") from None
    value = (raw >> 1) ^ -(raw & 1)
    if max_bytes == 5 and not INT32_MIN <= value <= INT32_MAX:
        raise CorruptRecordError(f"varint {value} does not fit in 32 bits")
    if not INT64_MIN <= value <= INT64_MAX:
        raise CorruptRecordError(f"varlong {value} does not fit in 64 bits")
    return value, pos


def read_varlong(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    return read_varint(buf, pos, 10)


def write_varint(out: bytearray, value: int) -> None:
    """Append the zigzag varint of ``value`` (any int64) to ``out``."""
    raw = ((value << 1) ^ (value >> 63)) & 0xFFFF_FFFF_FFFF_FFFF
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def varint_size(value: int) -> int:
    raw = ((value << 1) ^ (value >> 63)) & 0xFFFF_FFFF_FFFF_FFFF
    size = 1
    while raw >= 0x80:
        raw >>= 7
        size += 1
    return size
