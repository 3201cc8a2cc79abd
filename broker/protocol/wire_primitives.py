"""Kafka's variable-length encodings, shared by interpreted and compiled schemas.

The compiled schemas import these by name, so they must stay plain module-level
functions. Every reader checks a declared length against the bytes that remain before
it allocates anything: a hostile length prefix costs nothing.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

from broker.protocol.exceptions import MalformedMessageError

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")

_ONE_BYTE = [bytes((i,)) for i in range(128)]
# Kafka caps unsigned varints at 5 bytes (32 bits of payload).
_MAX_VARINT_SHIFT = 28
MAX_STRING_LENGTH = 0x7FFF


def read_uvarint(stream: BytesIO) -> int:
    b = stream.read(1)
    if not b:
        raise MalformedMessageError("truncated unsigned varint")
    v = b[0]
    if v < 0x80:
        return v
    result = v & 0x7F
    shift = 7
    while True:
        b = stream.read(1)
        if not b:
            raise MalformedMessageError("truncated unsigned varint")
        v = b[0]
        result |= (v & 0x7F) << shift
        if v < 0x80:
            return result
        shift += 7
        if shift > _MAX_VARINT_SHIFT:
            raise MalformedMessageError("unsigned varint longer than 5 bytes")


def uvarint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0 or value > 0xFFFFFFFF:
        raise MalformedMessageError(f"unsigned varint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def remaining(stream: BytesIO) -> int:
    # seek/tell rather than getbuffer(): getbuffer() would unshare (copy) a BytesIO
    # that wraps an immutable bytes object.
    pos = stream.tell()
    end = stream.seek(0, 2)
    stream.seek(pos)
    return end - pos


def read_exact(stream: BytesIO, n: int) -> bytes:
    if n < 0:
        raise MalformedMessageError(f"negative length {n}")
    data = stream.read(n)
    if len(data) != n:
        raise MalformedMessageError(f"declared length {n} exceeds the {len(data)} bytes left")
    return data


def read_records(stream: BytesIO, ctx: Any, n: int) -> bytes | memoryview:
    """Record batches stay opaque; sliced from the frame without copying when possible."""
    if n < 0:
        raise MalformedMessageError(f"negative length {n}")
    buf: memoryview | None = ctx.get("_buf") if isinstance(ctx, dict) else None
    if buf is None:
        return read_exact(stream, n)
    pos = stream.tell()
    if n > len(buf) - pos:
        raise MalformedMessageError(f"declared length {n} exceeds the {len(buf) - pos} bytes left")
    stream.seek(pos + n)
    return buf[pos : pos + n]


def check_count(stream: BytesIO, n: int) -> int:
    # Same rule as Kafka: an element count above the remaining byte count is refused
    # before any element is read, which also bounds arrays of zero-width elements.
    if n > remaining(stream):
        raise MalformedMessageError(f"array of {n} elements exceeds the bytes left")
    return n


def read_string_length(stream: BytesIO, compact: bool) -> int:
    """-1 means null."""
    if compact:
        n = read_uvarint(stream) - 1
    else:
        n = INT16.unpack(read_exact(stream, 2))[0]
        if n < 0:
            n = -1
    if n > MAX_STRING_LENGTH:
        raise MalformedMessageError(f"string length {n} above {MAX_STRING_LENGTH}")
    return n


def read_bytes_length(stream: BytesIO, compact: bool) -> int:
    """-1 means null."""
    if compact:
        return read_uvarint(stream) - 1
    n = INT32.unpack(read_exact(stream, 4))[0]
    return -1 if n < 0 else n


def read_array_length(stream: BytesIO, compact: bool) -> int:
    """-1 means null; a non-negative count is already checked against the bytes left."""
    if compact:
        n = read_uvarint(stream) - 1
    else:
        n = INT32.unpack(read_exact(stream, 4))[0]
        if n < 0:
            return -1
    if n >= 0:
        check_count(stream, n)
    return n


def length_prefix(n: int, compact: bool, wide: bool) -> bytes:
    """Prefix for a present value of length n (wide: int32, else int16)."""
    if compact:
        return uvarint(n + 1)
    if wide:
        return INT32.pack(n)
    if n > MAX_STRING_LENGTH:
        raise MalformedMessageError(f"string of {n} bytes is too long for the protocol")
    return INT16.pack(n)


def null_prefix(compact: bool, wide: bool) -> bytes:
    if compact:
        return b"\x00"
    return b"\xff\xff\xff\xff" if wide else b"\xff\xff"


def null_field(name: str) -> MalformedMessageError:
    return MalformedMessageError(f"non-nullable field {name!r} is null")


def byte_length(value: bytes | bytearray | memoryview) -> int:
    return value.nbytes if isinstance(value, memoryview) else len(value)


def write_tagged_section(stream: BytesIO, tagged: list[tuple[int, bytes]]) -> None:
    tagged.sort(key=lambda item: item[0])
    stream.write(uvarint(len(tagged)))
    for tag, data in tagged:
        stream.write(uvarint(tag))
        stream.write(uvarint(len(data)))
        stream.write(data)


def read_tagged_header(stream: BytesIO) -> tuple[int, int, int]:
    """(tag, size, end offset) of the next tagged field; size already bounds-checked."""
    tag = read_uvarint(stream)
    size = read_uvarint(stream)
    start = stream.tell()
    if size > remaining(stream):
        raise MalformedMessageError(f"tagged field {tag} of {size} bytes exceeds the bytes left")
    return tag, size, start + size


def finish_tagged_field(stream: BytesIO, tag: int, end: int) -> None:
    pos = stream.tell()
    if pos > end:
        raise MalformedMessageError(f"tagged field {tag} overran its declared size")
    if pos < end:
        stream.seek(end)


def build_to_bytes(builder: Any, value: Any, ctx: Any) -> bytes:
    out = BytesIO()
    builder(value, out, ctx)
    return out.getvalue()
