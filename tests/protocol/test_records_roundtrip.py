"""Records: encode/decode round trips, malformed records, and fuzzing for crash-freedom."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.records import (
    Compression,
    CorruptRecordError,
    Header,
    InvalidRecordError,
    Record,
    RecordError,
    TimestampType,
    compress,
    decode_records,
    encode_batch,
    iter_batches,
    parse_header,
    validate_batch,
)
from broker.protocol.records.varint import read_varint, write_varint

pytestmark = pytest.mark.unit

optional_bytes = st.one_of(st.none(), st.binary(max_size=300))
headers = st.lists(st.builds(Header, key=st.text(max_size=20), value=optional_bytes), max_size=4)
records = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**40),  # timestamp delta
        optional_bytes,
        optional_bytes,
        headers,
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(
    records=records,
    codec=st.sampled_from(list(Compression)),
    base_timestamp=st.integers(min_value=-1, max_value=2**50),
    base_offset=st.integers(min_value=0, max_value=2**62),
    timestamp_type=st.sampled_from(list(TimestampType)),
)
def test_encode_then_decode_gives_back_the_records(
    records: list[tuple[int, bytes | None, bytes | None, list[Header]]],
    codec: Compression,
    base_timestamp: int,
    base_offset: int,
    timestamp_type: TimestampType,
) -> None:
    originals = [
        Record(index, delta, key, value, list(hdrs))
        for index, (delta, key, value, hdrs) in enumerate(records)
    ]
    batch = encode_batch(
        originals,
        compression=codec,
        base_timestamp=base_timestamp,
        base_offset=base_offset,
        timestamp_type=timestamp_type,
    )
    header, decoded = decode_records(batch)
    assert decoded == originals
    assert decode_records(memoryview(bytearray(batch)))[1] == originals
    assert header.records_count == len(originals)
    assert header.base_offset == base_offset
    assert header.compression is codec
    assert header.timestamp_type is timestamp_type
    if originals and timestamp_type is TimestampType.CREATE_TIME:
        assert header.max_timestamp == base_timestamp + max(r.timestamp_delta for r in originals)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(out, value)
    decoded, end = read_varint(bytes(out), 0, 10)
    assert decoded == value and end == len(out)


def test_varint_limits() -> None:
    with pytest.raises(CorruptRecordError, match="longer"):
        read_varint(b"\xff" * 6 + b"\x01", 0)
    with pytest.raises(CorruptRecordError, match="past the end"):
        read_varint(b"\xff\xff", 0)
    out = bytearray()
    write_varint(out, 2**32)  # five bytes, but more than 32 bits
    with pytest.raises(CorruptRecordError, match="32 bits"):
        read_varint(bytes(out), 0, 5)


def test_key_value_pairs_get_consecutive_offsets() -> None:
    _, decoded = decode_records(encode_batch([(b"a", b"1"), (None, None), (b"", b"")]))
    assert [(r.offset_delta, r.key, r.value) for r in decoded] == [
        (0, b"a", b"1"),
        (1, None, None),
        (2, b"", b""),
    ]


def sealed_batch(section: bytes, count: int, codec: Compression = Compression.NONE) -> bytes:
    """A correctly signed batch around an arbitrary records section."""
    payload = compress(codec, section)
    header = struct.pack(
        ">qiibIhiqqqhii",
        0,
        49 + len(payload),
        0,
        2,
        0,
        int(codec),
        count - 1,
        0,
        0,
        -1,
        -1,
        -1,
        count,
    )
    batch = bytearray(header + payload)
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return bytes(batch)


def raw_record(body: bytes, declared: int | None = None) -> bytes:
    out = bytearray()
    write_varint(out, len(body) if declared is None else declared)
    return bytes(out) + body


def record_body(key: bytes, value: bytes, header_count: int = 0, extra: bytes = b"") -> bytes:
    out = bytearray(b"\x00")
    write_varint(out, 0)  # timestamp delta
    write_varint(out, 0)  # offset delta
    write_varint(out, len(key))
    out += key
    write_varint(out, len(value))
    out += value
    write_varint(out, header_count)
    return bytes(out) + extra


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.ZSTD])
def test_hand_built_records_decode(codec: Compression) -> None:
    section = raw_record(record_body(b"k", b"v")) + raw_record(record_body(b"", b"w"))
    _, decoded = decode_records(sealed_batch(section, 2, codec))
    assert [(r.key, r.value) for r in decoded] == [(b"k", b"v"), (b"", b"w")]


@pytest.mark.parametrize(
    ("section", "count", "match"),
    [
        (raw_record(record_body(b"k", b"v" * 20)), 2, "holds 1"),
        (raw_record(record_body(b"k", b"v")) + b"\x00\x00", 1, "follow the last"),
        (raw_record(record_body(b"k", b"v"), declared=3), 1, "record 0"),
        (raw_record(record_body(b"k", b"v") + b"\x00"), 1, "declares"),
        (raw_record(record_body(b"k", b"v"), declared=-2), 1, "negative length"),
        (raw_record(record_body(b"k", b"v", header_count=1)), 1, "record 0"),
        (raw_record(record_body(b"k", b"v", header_count=-3)), 1, "negative header count"),
        (raw_record(record_body(b"k", b"v", 1, b"\x02\xff\x00")), 1, "UTF-8"),
        (raw_record(record_body(b"k", b"v", 1, b"\x01\x00")), 1, "null header key"),
    ],
)
def test_malformed_records_are_invalid(section: bytes, count: int, match: str) -> None:
    batch = sealed_batch(section, count)
    validate_batch(batch)  # the header and CRC are fine; the records are not
    with pytest.raises(InvalidRecordError, match=match):
        decode_records(batch)


def test_uncompressed_batch_too_small_for_its_count_is_invalid() -> None:
    batch = sealed_batch(raw_record(record_body(b"k", b"v")), 1000)
    with pytest.raises(InvalidRecordError, match="cannot fit"):
        validate_batch(batch)


def test_record_running_past_the_batch_is_corrupt() -> None:
    batch = sealed_batch(raw_record(record_body(b"k", b"v"), declared=500), 1)
    with pytest.raises(CorruptRecordError, match="runs past"):
        decode_records(batch)


def test_compressed_garbage_inside_a_signed_batch_is_corrupt() -> None:
    batch = bytearray(sealed_batch(b"", 0, Compression.GZIP))
    batch += b"not gzip"
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    with pytest.raises(CorruptRecordError, match="gzip"):
        decode_records(bytes(batch))


def test_a_decompression_bomb_inside_a_batch_is_refused() -> None:
    section = raw_record(record_body(b"", b"\0" * 5_000_000))
    batch = sealed_batch(section, 1, Compression.ZSTD)
    assert len(batch) < 10_000
    with pytest.raises(CorruptRecordError, match="more than"):
        decode_records(batch, max_size=1_000_000)
    assert decode_records(batch)[1][0].value == b"\0" * 5_000_000


def run_everything(data: bytes) -> None:
    for call in (
        lambda: parse_header(data),
        lambda: validate_batch(data),
        lambda: list(iter_batches(data)),
        lambda: list(iter_batches(data, allow_partial_tail=True)),
        lambda: list(iter_batches(data, validate=False)),
        lambda: decode_records(data, max_size=1 << 20),
    ):
        with contextlib.suppress(RecordError):
            call()


def resign(batch: bytearray) -> bytes:
    if len(batch) >= 21:
        struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return bytes(batch)


def test_random_garbage_raises_only_record_errors() -> None:
    rng = random.Random(20240611)
    for _ in range(3000):
        run_everything(rng.randbytes(rng.randrange(0, 200)))


@pytest.mark.parametrize("codec", list(Compression))
def test_mutated_batches_raise_only_record_errors(codec: Compression) -> None:
    # Re-signing after each mutation gets past the CRC, so the mutations reach the
    # length checks, the decompressors and the record decoder.
    rng = random.Random(int(codec))
    source = encode_batch(
        [Record(i, i * 3, b"key%d" % i, b"v" * i, [Header("h", b"x")]) for i in range(8)],
        compression=codec,
    )
    for _ in range(600):
        batch = bytearray(source)
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(batch))
            batch[position] = rng.randrange(256)
        if rng.random() < 0.2:
            del batch[rng.randrange(61, len(batch)) :]
        run_everything(bytes(batch))
        run_everything(resign(batch))
