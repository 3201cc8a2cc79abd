"""The records-section check a produced batch passes before it is stored: every lie a
header can tell with a matching CRC is caught, and every honest batch passes.

Bad batches are built with the project's builder and then given a lying header or
section by reframe_batch, which recomputes the CRC: the lie is caught, not the CRC.
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.protocol.errors import ErrorCode
from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    Compression,
    CorruptRecordError,
    DecompressedTooLargeError,
    Header,
    InvalidRecordError,
    Record,
    RecordError,
    check_batch_contents,
    check_records,
    check_records_count,
    compress,
    decode_records,
    encode_batch,
    reframe_batch,
    validate_batch,
)
from broker.protocol.records.record import encode_record
from broker.protocol.records.varint import write_varint

pytestmark = pytest.mark.unit

CODECS = list(Compression)
COMPRESSED = [c for c in Compression if c != Compression.NONE]


def records(count: int, value_size: int = 20) -> list[Record]:
    return [
        Record(i, i * 3, f"k{i}".encode(), bytes([i % 251]) * value_size,
               [Header("h", b"x")] if i % 2 else [])
        for i in range(count)
    ]


def section_of(items: list[Record]) -> bytes:
    out = bytearray()
    for record in items:
        encode_record(out, record)
    return bytes(out)


def refused(batch: bytes, **kwargs: int) -> RecordError:
    with pytest.raises(RecordError) as caught:
        check_batch_contents(batch, **kwargs)
    return caught.value


# ---------------------------------------------------------------- honest batches


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("count", [1, 2, 64, 65, 500])
def test_honest_batches_pass_under_every_codec(codec: Compression, count: int) -> None:
    batch = encode_batch(records(count), compression=codec, base_timestamp=1)
    header = check_batch_contents(batch)
    assert header.records_count == count


@pytest.mark.parametrize(
    "record",
    [
        Record(0, 0, None, None),
        Record(0, 0, b"", b""),
        Record(0, -5, None, b"v"),  # negative timestamp delta
        Record(0, 1 << 40, b"k" * 70, b"v" * 9000),  # long varints in every field
        Record(0, 0, None, b"v", [Header("", None), Header("\u00e9", b"")]),
        Record(0, 0, None, b"v", [Header(f"h{i}", b"x" * i) for i in range(100)]),
    ],
)
def test_unusual_but_valid_records_pass(record: Record) -> None:
    check_batch_contents(encode_batch([record, Record(1, 0, None, b"next")]))


def test_the_walk_in_slices_ends_where_the_whole_walk_does() -> None:
    section = section_of(records(1000))
    position = 0
    for first in range(0, 1000, 64):
        position = check_records(section, 1000, position=position, first=first, stop=first + 64)
    assert position == len(section) == check_records(section, 1000)


# ---------------------------------------------------------------- lying headers


@pytest.mark.parametrize("codec", CODECS)
def test_a_count_above_the_records_held_is_invalid(codec: Compression) -> None:
    batch = reframe_batch(encode_batch(records(5), compression=codec), records_count=6,
                          last_offset_delta=5)
    validate_batch(batch)  # the header alone is consistent
    error = refused(batch)
    assert isinstance(error, InvalidRecordError)
    assert error.error_code == ErrorCode.INVALID_RECORD
    assert "announces 6 records but holds 5" in error.reason


@pytest.mark.parametrize("codec", CODECS)
def test_a_count_below_the_records_held_leaves_trailing_bytes(codec: Compression) -> None:
    batch = reframe_batch(encode_batch(records(5), compression=codec), records_count=4,
                          last_offset_delta=3)
    error = refused(batch)
    assert isinstance(error, InvalidRecordError)
    assert "follow the last of 4 records" in error.reason


def test_a_huge_count_over_one_compressed_record_is_refused_before_any_walk() -> None:
    # The finding: one gzip record claiming 2,000,000,000 moved the log end that far.
    batch = reframe_batch(encode_batch(records(1), compression=Compression.GZIP),
                          records_count=2_000_000_000, last_offset_delta=1_999_999_999)
    validate_batch(batch)
    error = refused(batch)
    assert isinstance(error, InvalidRecordError)
    assert "2000000000" in error.reason


def test_a_batch_without_records_is_invalid() -> None:
    empty = encode_batch([])
    assert validate_batch(empty).records_count == 0
    error = refused(empty)
    assert isinstance(error, InvalidRecordError)
    assert "at least one record" in error.reason
    with pytest.raises(InvalidRecordError):
        check_records_count(b"", 0)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    "deltas", [[0, 1, 3, 4, 5], [0, 1, 2, 2, 4], [1, 2, 3, 4, 5], [0, 1, 2, 3, -1]]
)
def test_offset_deltas_must_be_the_record_index(codec: Compression, deltas: list[int]) -> None:
    # Gaps and repeats: a consumer saw offsets 0,1,3,4,5,5 from such a batch.
    lying = [Record(d, 0, None, f"v{i}".encode()) for i, d in enumerate(deltas)]
    batch = reframe_batch(encode_batch(lying, compression=codec), last_offset_delta=4)
    validate_batch(batch)
    error = refused(batch)
    assert isinstance(error, InvalidRecordError)
    assert "offset delta" in error.reason


@pytest.mark.parametrize("codec", CODECS)
def test_bytes_after_the_last_record_are_invalid(codec: Compression) -> None:
    section = section_of(records(3)) + b"\x00"
    batch = encode_batch(records(3))
    batch = reframe_batch(batch, compression=codec, section=compress(codec, section))
    error = refused(batch)
    assert isinstance(error, InvalidRecordError)
    assert "1 bytes follow the last of 3 records" in error.reason


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        # The first record's length (one byte) says one byte more than its fields take.
        (lambda s: bytes([s[0] + 2]) + s[1:], "declares"),
        # ... or one byte less: its last field runs into the next record.
        (lambda s: bytes([s[0] - 2]) + s[1:], "runs past the record"),
        # A record shorter than its six one-byte fields.
        (lambda s: b"\x04" + s[1:], "declares 2 bytes"),
        # A record length longer than the section.
        (lambda s: b"\xfe\x0f" + s[1:], "left in the batch"),
        # A varint that never ends.
        (lambda s: b"\xff" * 30, "varint"),
    ],
)
def test_record_lengths_must_frame_their_fields(edit: Callable[[bytes], bytes], reason: str) -> None:
    honest = section_of(records(3))
    batch = reframe_batch(encode_batch(records(3)), section=edit(honest))
    error = refused(batch)
    assert isinstance(error, InvalidRecordError), error
    assert reason in error.reason


def test_a_null_or_non_utf8_header_key_is_invalid() -> None:
    good = section_of([Record(0, 0, None, b"v", [Header("ab", b"x")])])
    assert b"\x04ab" in good
    for bad_key in (b"\x01", b"\x04\xff\xfe"):
        section = good.replace(b"\x04ab", bad_key)
        section = bytes([section[0] + 2 * (len(section) - len(good))]) + section[1:]
        error = refused(reframe_batch(encode_batch([(None, b"v")]), section=section))
        assert isinstance(error, InvalidRecordError)
        assert "header key" in error.reason


def raw_record(
    *, key: int | bytes = -1, value: int | bytes = b"v", headers: bytes = b"\x00",
    length: int | None = None,
) -> bytes:
    """Record 0 written field by field, so a field can say what no encoder would write:
    an int for key or value is a length with no bytes after it; ``headers`` is the raw
    header count and headers; ``length`` overrides the record's declared length."""
    body = bytearray(b"\x00\x00\x00")  # attributes, timestampDelta 0, offsetDelta 0
    for field in (key, value):
        if isinstance(field, int):
            write_varint(body, field)
        else:
            write_varint(body, len(field))
            body += field
    body += headers
    out = bytearray()
    write_varint(out, len(body) if length is None else length)
    return bytes(out + body)


def one_header(key: int | bytes, value: int | bytes) -> bytes:
    out = bytearray(b"\x02")  # one header
    for field in (key, value):
        if isinstance(field, int):
            write_varint(out, field)
        else:
            write_varint(out, len(field))
            out += field
    return bytes(out)


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (raw_record(key=-2), "record 0 has key length -2"),
        (raw_record(key=-65), "record 0 has key length -65"),  # a two-byte varint
        (raw_record(value=-2), "record 0 has value length -2"),
        (raw_record(value=-65), "record 0 has value length -65"),
        (raw_record(headers=b"\x01"), "record 0 announces -1 headers"),
        (raw_record(headers=b"\x14" + b"\x00" * 6), "record 0 announces 10 headers"),
        (raw_record(headers=one_header(-1, b"")), "record 0 has a header key of length -1"),
        (raw_record(headers=one_header(40, -1)), "record 0: a header key runs past the record"),
        # The key ends where the record does, so the value's length is past it.
        (raw_record(headers=b"\x02\x02a"), "record 0: varint runs past the end"),
        (raw_record(headers=one_header(b"k", -2)), "record 0 has a header value of length -2"),
        (raw_record(headers=one_header(b"k", 30) + b"\x00"),
         "record 0: a header value runs past the record"),
        (raw_record(key=30) + b"\x00" * 3, "record 0 runs past the end of the batch"),
        (raw_record(key=30) + b"\x00" * 40, "record 0: its key or value runs past the record"),
        (raw_record(length=-65) + b"\x00" * 8, "record 0 declares -65 bytes, with 15 left"),
        (raw_record(length=8) + b"\x00", "record 0 declares 8 bytes but its fields take 7"),
    ],
)
def test_each_malformed_field_is_refused_with_what_is_wrong(section: bytes, reason: str) -> None:
    batch = reframe_batch(encode_batch([(None, b"v")]), section=section)
    error = refused(batch)
    assert isinstance(error, InvalidRecordError), error
    assert error.reason.startswith(reason), error.reason


def test_lengths_either_side_of_each_varint_width_are_walked_like_the_decoder() -> None:
    # One-byte zigzag varints end at 63, two-byte ones at 8191: every length field of
    # a record (its own, key, value, header value) is taken across both edges.
    sizes = [*range(55, 72), *range(8180, 8200)]
    items = [Record(0, 0, b"k" * n, b"v" * (n // 2)) for n in sizes]
    items += [Record(0, 0, None, b"v" * n, [Header("h", b"x" * n)]) for n in sizes]
    items = [Record(i, 0, r.key, r.value, r.headers) for i, r in enumerate(items)]
    batch = encode_batch(items)
    header = check_batch_contents(batch)
    assert header.records_count == len(items)
    _, decoded = decode_records(batch)
    assert [(r.key, r.value) for r in decoded] == [(r.key, r.value) for r in items]
    section = section_of(items)
    assert check_records(section, len(items)) == len(section)


def test_a_header_count_of_zero_in_two_bytes_is_no_headers_as_for_the_decoder() -> None:
    # 0x80 0x00 is a longer than needed encoding of 0; Kafka's varint reader takes it.
    batch = reframe_batch(encode_batch([(None, b"v")]), section=raw_record(headers=b"\x80\x00"))
    assert check_batch_contents(batch).records_count == 1
    assert decode_records(batch)[1][0].headers == []


def test_a_single_header_of_an_empty_key_and_no_value_fills_its_record() -> None:
    check_batch_contents(encode_batch([Record(0, 0, None, b"v", [Header("", None)])]))


def test_a_batch_is_checked_where_it_starts_in_the_buffer() -> None:
    first = encode_batch([(None, b"a")])
    second = encode_batch([(None, b"b"), (None, b"c")], base_offset=7)
    assert check_batch_contents(first + second, len(first)).base_offset == 7


def test_the_count_refusals_say_how_many_records_fit() -> None:
    with pytest.raises(InvalidRecordError) as none:
        check_records_count(b"x" * 20, 0)
    assert none.value.reason == "a record batch must hold at least one record"
    with pytest.raises(InvalidRecordError) as many:
        check_records_count(b"x" * 20, 3)
    assert many.value.reason == (
        "batch announces 3 records, but its 20 bytes of records hold 2 at the most"
    )
    check_records_count(b"x" * 21, 3)


# ---------------------------------------------------------------- bad compressed data


@pytest.mark.parametrize("codec", COMPRESSED)
@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_under_a_codec_are_corrupt(codec: Compression, seed: int) -> None:
    noise = random.Random(seed).randbytes(2000)
    batch = reframe_batch(encode_batch(records(3)), compression=codec, section=noise)
    validate_batch(batch)
    error = refused(batch)
    # Garbage that happens to decompress still cannot hold three honest records.
    assert error.error_code in (ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD)
    if not isinstance(error, InvalidRecordError):
        assert isinstance(error, CorruptRecordError)


def test_random_bytes_flagged_gzip_are_corrupt_message() -> None:
    # The finding: such a batch was stored and consumers looped on it.
    noise = random.Random(1).randbytes(1000)
    batch = reframe_batch(encode_batch(records(1)), compression=Compression.GZIP, section=noise)
    error = refused(batch)
    assert error.error_code == ErrorCode.CORRUPT_MESSAGE
    assert "gzip" in error.reason


@pytest.mark.parametrize("codec", COMPRESSED)
def test_a_section_that_expands_past_the_bound_is_refused(codec: Compression) -> None:
    bound = 1 << 20
    bomb = compress(codec, bytes(4 << 20))
    assert len(bomb) < bound // 4
    batch = reframe_batch(encode_batch(records(1)), compression=codec, section=bomb)
    error = refused(batch, max_uncompressed=bound)
    assert isinstance(error, DecompressedTooLargeError)
    assert error.error_code == ErrorCode.CORRUPT_MESSAGE
    assert f"more than {bound} bytes" in error.reason


def test_a_gzip_bomb_at_the_default_bound_is_refused_without_expanding_it() -> None:
    # 256 MiB of zeros in about 250 KiB: four times the default bound.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    bomb = b"".join(packer.compress(chunk) for _ in range(256)) + packer.flush()
    batch = reframe_batch(encode_batch(records(1)), compression=Compression.GZIP, section=bomb)
    assert isinstance(refused(batch), DecompressedTooLargeError)


# ---------------------------------------------------------------- against the decoder


def _forge(rng: random.Random, honest: bytes) -> bytes:
    section = bytearray(honest)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(4)
        if kind == 0 and section:
            section[rng.randrange(len(section))] = rng.randrange(256)
        elif kind == 1 and section:
            del section[rng.randrange(len(section))]
        elif kind == 2:
            section.insert(rng.randrange(len(section) + 1), rng.randrange(256))
        else:
            section[rng.randrange(len(section) + 1):] = rng.randbytes(rng.randint(0, 4))
    return bytes(section)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), count=st.integers(1, 6), codec=st.sampled_from(CODECS))
def test_the_check_accepts_exactly_what_the_decoder_decodes_in_order(
    seed: int, count: int, codec: Compression
) -> None:
    """check_batch_contents (the lean walk) against decode_records (the full decoder)
    plus the rule that offset deltas run 0, 1, 2, ...: on mutated sections they agree."""
    rng = random.Random(seed)
    items = [Record(i, rng.randint(-3, 300), rng.choice([None, b"", b"k"]),
                    rng.choice([None, b"", os.urandom(rng.randint(1, 200))]),
                    [Header("h", b"v")] * rng.randint(0, 2)) for i in range(count)]
    honest = section_of(items)
    claimed = count + rng.choice([0, 0, 0, -1, 1])
    batch = reframe_batch(encode_batch(items), records_count=claimed,
                          last_offset_delta=claimed - 1, compression=codec,
                          section=compress(codec, _forge(rng, honest)))
    try:
        _, decoded = decode_records(batch)
        expected_ok = bool(decoded) and [r.offset_delta for r in decoded] == list(range(len(decoded)))
    except RecordError:
        expected_ok = False
    try:
        check_batch_contents(batch)
        ok = True
    except RecordError:
        ok = False
    assert ok == expected_ok, batch[BATCH_HEADER_SIZE:].hex()
