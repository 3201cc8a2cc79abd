"""Codecs: the framings real clients send, and bounded decompression."""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import struct

import cramjam
import pytest

from broker.protocol.records import Compression, CorruptRecordError, compress, decompress
from broker.protocol.records.codecs import _xxh32

pytestmark = pytest.mark.unit

COMPRESSED = [c for c in Compression if c != Compression.NONE]
PAYLOADS = [b"", b"x", os.urandom(1000), b"kafka " * 30_000, os.urandom(70_000) + b"\0" * 70_000]


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{len(p)}B")
def test_round_trip(codec: Compression, payload: bytes) -> None:
    packed = compress(codec, payload)
    assert decompress(codec, packed) == payload
    assert decompress(codec, memoryview(packed)) == payload


def xerial(payload: bytes, block_size: int) -> bytes:
    """snappy-java's stream framing, built here from its published layout."""
    out = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for start in range(0, len(payload), block_size):
        block = bytes(cramjam.snappy.compress_raw(payload[start : start + block_size]))
        out += struct.pack(">i", len(block)) + block
    return out


@pytest.mark.parametrize("block_size", [1, 100, 32 * 1024])
def test_xerial_snappy_framing_decodes(block_size: int) -> None:
    payload = (b"abc" * 5000) + os.urandom(3000)
    assert decompress(Compression.SNAPPY, xerial(payload, block_size)) == payload


def test_raw_snappy_block_decodes() -> None:
    payload = b"librdkafka sends one raw block " * 1000
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(payload))) == payload


def test_snappy_is_written_in_xerial_framing() -> None:
    payload = os.urandom(100_000)
    packed = compress(Compression.SNAPPY, payload)
    assert packed.startswith(b"\x82SNAPPY\x00")
    assert struct.unpack_from(">ii", packed, 8) == (1, 1)
    # Each block is at most 32 KiB before compression, as the Java client writes it.
    pos, blocks = 16, []
    while pos < len(packed):
        (length,) = struct.unpack_from(">i", packed, pos)
        blocks.append(bytes(cramjam.snappy.decompress_raw(packed[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    assert b"".join(blocks) == payload
    assert max(len(b) for b in blocks) == 32 * 1024


def test_truncated_xerial_stream_is_corrupt() -> None:
    packed = xerial(b"abc" * 10_000, 4096)
    for cut in (9, 17, len(packed) - 1):
        with pytest.raises(CorruptRecordError):
            decompress(Compression.SNAPPY, packed[:cut])


def test_lz4_frames_from_the_reference_library_decode() -> None:
    payload = b"linked blocks and checksums " * 20_000
    assert decompress(Compression.LZ4, bytes(cramjam.lz4.compress(payload))) == payload


def test_lz4_is_written_as_independent_blocks_the_reference_library_reads() -> None:
    payload = os.urandom(10_000) + b"z" * 200_000
    packed = compress(Compression.LZ4, payload)
    assert packed[:4] == b"\x04\x22\x4d\x18"
    flg = packed[4]
    assert flg >> 6 == 1 and flg & 0x20  # version 1, block independence
    assert bytes(cramjam.lz4.decompress(packed)) == payload


def test_xxh32_known_values() -> None:
    assert _xxh32(b"") == 0x02CC5D05
    assert _xxh32(b"a") == 0x550D7456
    assert _xxh32(b"abc") == 0x32D153FF


def test_gzip_from_the_standard_library_and_concatenated_members_decode() -> None:
    assert decompress(Compression.GZIP, gzip.compress(b"one")) == b"one"
    joined = gzip.compress(b"one ") + gzip.compress(b"two")
    assert decompress(Compression.GZIP, joined) == b"one two"


def test_zstd_from_the_reference_library_decodes() -> None:
    payload = b"zstd " * 50_000
    assert decompress(Compression.ZSTD, bytes(cramjam.zstd.compress(payload, level=19))) == payload


BOMB = b"\0" * (8 * 1024 * 1024)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_decompression_is_bounded(codec: Compression) -> None:
    packed = compress(codec, BOMB)
    assert len(packed) < len(BOMB) // 20  # snappy tops out near 21:1
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(codec, packed, max_size=1024 * 1024)
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(codec, packed, max_size=len(BOMB) - 1)
    assert decompress(codec, packed, max_size=len(BOMB)) == BOMB


def test_raw_snappy_and_xerial_are_bounded_before_decompressing() -> None:
    raw = bytes(cramjam.snappy.compress_raw(BOMB))
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(Compression.SNAPPY, raw, max_size=1000)
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(Compression.SNAPPY, xerial(BOMB, 1 << 20), max_size=(1 << 20) + 5)


def test_uncompressed_data_is_bounded_too() -> None:
    with pytest.raises(CorruptRecordError):
        decompress(Compression.NONE, b"12345", max_size=4)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_garbage_is_corrupt_and_nothing_else(codec: Compression) -> None:
    rng = random.Random(codec)
    valid = compress(codec, b"some records " * 500)
    inputs = [b"\x00", b"\xff" * 16, b"\x82SNAPPY\x00"]
    inputs += [rng.randbytes(rng.randrange(1, 300)) for _ in range(300)]
    inputs += [valid[: rng.randrange(1, len(valid))] for _ in range(100)]
    for _ in range(300):
        mutated = bytearray(valid)
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        inputs.append(bytes(mutated))
    for data in inputs:
        with contextlib.suppress(CorruptRecordError):
            decompress(codec, data, max_size=1 << 20)
