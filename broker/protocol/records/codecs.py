"""The four compression codecs of record batches, with decompression bounded in size.

Decompressing what a client sent is the one place where a few bytes can cost the broker
gigabytes of memory, so every decoder stops at ``max_size`` and reports corruption.
"""

from __future__ import annotations

import struct
import threading
import zlib

import cramjam

from .batch import Buffer, Compression
from .exceptions import CorruptRecordError, DecompressedTooLargeError, UnsupportedCompressionError

DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024
# Each thread that decompresses lz4 or zstd keeps one buffer of this size to decompress
# into: what clients send (librdkafka's batch.size is 1 MB before compression) fits.
SCRATCH_BYTES = 4 * 1024 * 1024
# How much gzip output one zlib call may produce.
GZIP_STEP = 1024 * 1024
_scratch = threading.local()

# The Java client frames snappy the way snappy-java's SnappyOutputStream does ("xerial"):
# this header, then blocks each preceded by a big-endian int32 length.
XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = struct.Struct(">8sii")
XERIAL_VERSION = 1
XERIAL_MIN_COMPATIBLE = 1
XERIAL_BLOCK_SIZE = 32 * 1024
_BLOCK_LENGTH = struct.Struct(">i")

# LZ4 frame written with independent 64 KiB blocks and no checksums: the Java client's
# reader decodes each block on its own, and the batch CRC already guards the bytes.
LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
LZ4_FLG = 0x60  # version 01, blocks independent
LZ4_BD = 0x40  # 64 KiB maximum block size
LZ4_BLOCK_SIZE = 64 * 1024
LZ4_UNCOMPRESSED_BIT = 0x8000_0000
_UINT32_LE = struct.Struct("<I")


def compress(codec: Compression, data: Buffer) -> bytes:
    """Compress a records section the way Kafka clients expect to find it."""
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.GZIP:
        return _gzip_compress(data)
    if codec == Compression.SNAPPY:
        return _xerial_compress(data)
    if codec == Compression.LZ4:
        return _lz4_frame_compress(data)
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(bytes(data), level=3))
    raise UnsupportedCompressionError(f"unknown compression codec {codec}")


def decompress(
    codec: Compression, data: Buffer, *, max_size: int = DEFAULT_MAX_DECOMPRESSED
) -> bytes:
    """Decompress a records section; garbage or more than ``max_size`` bytes is corrupt."""
    if codec == Compression.NONE:
        if len(data) > max_size:
            raise _too_large(max_size)
        return bytes(data)
    try:
        if codec == Compression.GZIP:
            return _gzip_decompress(data, max_size)
        if codec == Compression.SNAPPY:
            return _snappy_decompress(data, max_size)
        if codec in (Compression.LZ4, Compression.ZSTD):
            module = cramjam.lz4 if codec == Compression.LZ4 else cramjam.zstd
            return _bounded_cramjam(module, data, max_size)
    except CorruptRecordError:
        raise
    except (cramjam.DecompressionError, zlib.error, ValueError, OverflowError) as exc:
        raise CorruptRecordError(
            f"{Compression(codec).name.lower()} data is corrupt: {exc}"
        ) from None
    raise UnsupportedCompressionError(f"unknown compression codec {codec}")


def _too_large(max_size: int) -> DecompressedTooLargeError:
    return DecompressedTooLargeError(f"records decompress to more than {max_size} bytes")


def _gzip_compress(data: Buffer) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def _gzip_decompress(data: Buffer, max_size: int) -> bytes:
    # A mebibyte at a time: zlib lets go of the GIL only inside inflate, and one call for
    # tens of megabytes holds it for long stretches between (the broker's event loop
    # waits on it); a bomb is also stopped at the first step past the bound.
    parts: list[bytes] = []
    size = 0
    rest = bytes(data)
    while True:
        unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            step = min(GZIP_STEP, max_size + 1 - size)
            chunk = unpacker.decompress(rest, step)
            parts.append(chunk)
            size += len(chunk)
            if size > max_size:
                raise _too_large(max_size)
            rest = unpacker.unconsumed_tail
            if unpacker.eof:
                break
            if not rest and len(chunk) < step:
                raise CorruptRecordError("gzip data is truncated")
        # Concatenated gzip members are one stream, as gzip(1) and Java's reader treat them.
        rest = unpacker.unused_data
        if not rest:
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _xerial_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    parts = [XERIAL_HEADER.pack(XERIAL_MAGIC, XERIAL_VERSION, XERIAL_MIN_COMPATIBLE)]
    for start in range(0, len(view), XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(bytes(view[start : start + XERIAL_BLOCK_SIZE])))
        parts.append(_BLOCK_LENGTH.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: Buffer, max_size: int) -> bytes:
    raw = bytes(data)
    if not raw.startswith(XERIAL_MAGIC):
        # librdkafka and most non-Java clients send a bare snappy block.
        return _snappy_block(raw, max_size)
    if len(raw) < XERIAL_HEADER.size:
        raise CorruptRecordError("xerial snappy header is truncated")
    out = bytearray()
    pos = XERIAL_HEADER.size
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise CorruptRecordError("xerial snappy block length is truncated")
        (length,) = _BLOCK_LENGTH.unpack_from(raw, pos)
        pos += 4
        if length < 0 or pos + length > len(raw):
            raise CorruptRecordError(f"xerial snappy block of {length} bytes runs past the data")
        try:
            out += _snappy_block(raw[pos : pos + length], max_size - len(out))
        except DecompressedTooLargeError:
            raise _too_large(max_size) from None  # the bound, not what was left of it
        pos += length
    return bytes(out)


def _snappy_block(block: bytes, max_size: int) -> bytes:
    # A snappy block starts with its decompressed length, so the bound is checked first.
    if int(cramjam.snappy.decompress_raw_len(block)) > max_size:
        raise _too_large(max_size)
    return bytes(cramjam.snappy.decompress_raw(block))


def _bounded_cramjam(module: object, data: Buffer, max_size: int) -> bytes:
    # cramjam stops with an error when the output buffer is full, so a buffer one byte
    # larger than the limit bounds both memory and work. Most sections fit the calling
    # thread's scratch buffer: a fresh one costs a page fault per 4 KiB on first touch,
    # which on virtual machines costs more than the decompression itself.
    source = bytes(data)
    scratch = _thread_scratch()
    limit = min(max_size + 1, len(scratch))
    with memoryview(scratch)[:limit] as view:
        try:
            written = int(module.decompress_into(source, view))  # type: ignore[attr-defined]
        except cramjam.DecompressionError as exc:
            if "whole buffer" not in str(exc):
                raise
            if limit > max_size:
                raise _too_large(max_size) from None
        else:
            if written > max_size:
                raise _too_large(max_size)
            return bytes(view[:written])
    # Past the scratch buffer (rare, and checked off the event loop by the broker).
    out = bytearray(max_size + 1)
    try:
        written = int(module.decompress_into(source, out))  # type: ignore[attr-defined]
    except cramjam.DecompressionError as exc:
        if "whole buffer" not in str(exc):
            raise
        raise _too_large(max_size) from None
    if written > max_size:
        raise _too_large(max_size)
    del out[written:]
    return bytes(out)


def _thread_scratch() -> bytearray:
    scratch: bytearray | None = getattr(_scratch, "buffer", None)
    if scratch is None:
        scratch = _scratch.buffer = bytearray(SCRATCH_BYTES)
    return scratch


def _lz4_frame_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    parts = [LZ4_FRAME_MAGIC, bytes((LZ4_FLG, LZ4_BD, _lz4_header_checksum(LZ4_FLG, LZ4_BD)))]
    for start in range(0, len(view), LZ4_BLOCK_SIZE):
        chunk = bytes(view[start : start + LZ4_BLOCK_SIZE])
        packed = bytes(cramjam.lz4.compress_block(chunk, store_size=False))
        if len(packed) < len(chunk):
            parts += (_UINT32_LE.pack(len(packed)), packed)
        else:
            parts += (_UINT32_LE.pack(len(chunk) | LZ4_UNCOMPRESSED_BIT), chunk)
    parts.append(_UINT32_LE.pack(0))  # end mark
    return b"".join(parts)


def _lz4_header_checksum(flg: int, bd: int) -> int:
    return (_xxh32(bytes((flg, bd))) >> 8) & 0xFF


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_MASK32 = 0xFFFF_FFFF


def _rotl32(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK32


def _xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 of inputs shorter than 16 bytes: all the LZ4 frame header checksum needs."""
    if len(data) >= 16:
        raise ValueError("only short inputs are supported")
    acc = (seed + _P5 + len(data)) & _MASK32
    pos = 0
    while pos + 4 <= len(data):
        (word,) = _UINT32_LE.unpack_from(data, pos)
        acc = (_rotl32((acc + word * _P3) & _MASK32, 17) * _P4) & _MASK32
        pos += 4
    for byte in data[pos:]:
        acc = (_rotl32((acc + byte * _P5) & _MASK32, 11) * _P1) & _MASK32
    acc ^= acc >> 15
    acc = (acc * _P2) & _MASK32
    acc ^= acc >> 13
    acc = (acc * _P3) & _MASK32
    acc ^= acc >> 16
    return acc
