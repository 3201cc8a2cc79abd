"""Batch headers: parsing, the CRC scope, truncation, legacy formats, in-place edits."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c

from broker.protocol.errors import ErrorCode
from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    LegacyMessageSetError,
    Record,
    RecordError,
    TimestampType,
    UnsupportedCompressionError,
    compute_crc,
    decode_records,
    encode_batch,
    iter_batches,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batch,
)

pytestmark = pytest.mark.unit

CRC_SCOPE_START = 21


def sample_batch(**kwargs: object) -> bytes:
    records = [(b"key-%d" % i, b"value-%d" % i) for i in range(5)]
    return encode_batch(records, base_timestamp=1_700_000_000_000, **kwargs)  # type: ignore[arg-type]


def test_header_fields_are_read_from_their_positions() -> None:
    batch = encode_batch(
        [(b"a", b"b")] * 3,
        base_offset=42,
        base_timestamp=1234,
        producer_id=77,
        producer_epoch=3,
        base_sequence=10,
        is_transactional=True,
        partition_leader_epoch=9,
        compression=Compression.GZIP,
    )
    header = parse_header(memoryview(batch))
    assert header.base_offset == 42
    assert header.batch_length == len(batch) - LOG_OVERHEAD
    assert header.size == len(batch)
    assert header.partition_leader_epoch == 9
    assert header.magic == 2
    assert header.crc == crc32c(batch[CRC_SCOPE_START:])
    assert header.last_offset_delta == 2
    assert header.last_offset == 44
    assert header.next_offset == 45
    assert header.records_count == 3
    assert header.base_timestamp == header.max_timestamp == 1234
    assert header.producer_id == 77 and header.has_producer_id
    assert header.producer_epoch == 3
    assert header.last_sequence == 12
    assert header.is_transactional and not header.is_control
    assert header.compression is Compression.GZIP
    assert header.timestamp_type is TimestampType.CREATE_TIME


def test_header_at_an_offset_inside_a_larger_buffer() -> None:
    batch = sample_batch(base_offset=7)
    buf = b"\xff" * 13 + batch + b"\xee" * 5
    assert parse_header(buf, 13).base_offset == 7
    assert validate_batch(buf, 13).size == len(batch)


def test_without_producer_id_there_is_no_sequence() -> None:
    header = parse_header(sample_batch())
    assert not header.has_producer_id
    assert header.last_sequence == -1


def test_last_sequence_wraps_past_int32_max() -> None:
    header = parse_header(
        encode_batch([(None, b"x")] * 4, producer_id=1, producer_epoch=0, base_sequence=2**31 - 2)
    )
    assert header.last_sequence == 1


def test_max_timestamp_is_the_latest_record() -> None:
    records = [Record(i, delta, None, b"v", []) for i, delta in enumerate([5, 50, 20])]
    header = parse_header(encode_batch(records, base_timestamp=1000))
    assert header.max_timestamp == 1050


def test_a_valid_batch_passes_and_its_crc_is_recomputable() -> None:
    batch = sample_batch()
    header = validate_batch(batch)
    assert compute_crc(batch) == header.crc


SAMPLE_SIZE = len(sample_batch())


@pytest.mark.parametrize("position", range(CRC_SCOPE_START, SAMPLE_SIZE))
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_a_flipped_bit_in_the_crc_scope_fails_the_check(position: int, mask: int) -> None:
    batch = bytearray(sample_batch())
    batch[position] ^= mask
    with pytest.raises(RecordError) as caught:
        validate_batch(batch)
    # Only a CRC failure can be reported once the bytes differ from what the CRC covers;
    # a flip in batchLength-independent fields must not slip through as valid.
    assert isinstance(caught.value, CorruptRecordError)
    assert caught.value.error_code == ErrorCode.CORRUPT_MESSAGE


def test_a_flipped_stored_crc_fails_the_check() -> None:
    for position in range(17, 21):
        batch = bytearray(sample_batch())
        batch[position] ^= 0x80
        with pytest.raises(CorruptRecordError, match="CRC"):
            validate_batch(batch)


@pytest.mark.parametrize("position", list(range(0, 8)) + list(range(12, 16)))
def test_base_offset_and_leader_epoch_are_outside_the_crc(position: int) -> None:
    batch = bytearray(sample_batch())
    batch[position] ^= 0xFF
    validate_batch(batch)


def test_set_base_offset_and_leader_epoch_keep_the_batch_valid() -> None:
    batch = bytearray(sample_batch())
    crc_before = parse_header(batch).crc
    set_base_offset(batch, 0, 123_456_789_000)
    set_partition_leader_epoch(batch, 0, 17)
    header = validate_batch(batch)
    assert header.base_offset == 123_456_789_000
    assert header.partition_leader_epoch == 17
    assert header.crc == crc_before


def test_set_log_append_time_marks_the_batch_and_keeps_it_valid() -> None:
    original = sample_batch(compression=Compression.LZ4)
    batch = bytearray(b"\x00" * 9 + original)
    view = memoryview(batch)
    set_log_append_time(view, 9, 1_800_000_000_000)
    header = validate_batch(batch, 9)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == 1_800_000_000_000
    assert header.compression is Compression.LZ4
    assert header.base_timestamp == parse_header(original).base_timestamp
    _, records = decode_records(batch, 9)
    assert [r.value for r in records] == [b"value-%d" % i for i in range(5)]


@pytest.mark.parametrize("cut", [0, 1, 16, 17, 60, 61, 62, -1])
def test_truncation_is_corruption(cut: int) -> None:
    batch = sample_batch()
    truncated = batch[:cut]
    with pytest.raises(CorruptRecordError):
        validate_batch(truncated)
    if not truncated:
        return  # an empty buffer is zero batches, not a truncated one
    with pytest.raises(CorruptRecordError):
        list(iter_batches(truncated))
    with pytest.raises(CorruptRecordError):
        list(iter_batches(truncated, validate=False))


def test_batch_length_below_the_header_is_corrupt() -> None:
    batch = bytearray(sample_batch())
    struct.pack_into(">i", batch, 8, 10)
    with pytest.raises(CorruptRecordError, match="minimum"):
        parse_header(batch)
    struct.pack_into(">i", batch, 8, -5)
    with pytest.raises(CorruptRecordError):
        validate_batch(batch)


def test_batch_length_beyond_the_buffer_is_corrupt() -> None:
    batch = bytearray(sample_batch())
    struct.pack_into(">i", batch, 8, 2**31 - 1)
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batch(batch)


def resign(batch: bytearray) -> None:
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[CRC_SCOPE_START:])))


def test_last_offset_delta_must_match_the_count() -> None:
    batch = bytearray(sample_batch())
    struct.pack_into(">i", batch, 23, 7)
    resign(batch)
    with pytest.raises(InvalidRecordError) as caught:
        validate_batch(batch)
    assert caught.value.error_code == ErrorCode.INVALID_RECORD


def test_negative_record_count_is_corrupt() -> None:
    batch = bytearray(sample_batch())
    struct.pack_into(">i", batch, 57, -3)
    resign(batch)
    with pytest.raises(CorruptRecordError, match="negative"):
        validate_batch(batch)


def test_unknown_codec_is_refused() -> None:
    batch = bytearray(sample_batch())
    struct.pack_into(">h", batch, 21, 6)
    resign(batch)
    with pytest.raises(UnsupportedCompressionError) as caught:
        validate_batch(batch)
    assert caught.value.error_code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


def test_unknown_magic_is_corrupt() -> None:
    batch = bytearray(sample_batch())
    batch[16] = 3
    with pytest.raises(CorruptRecordError, match="magic"):
        parse_header(batch)


def legacy_message_set(magic: int) -> bytes:
    """One uncompressed message of format v0 or v1, as a pre-0.11 producer sends it."""
    body = struct.pack(">bb", magic, 0)
    if magic == 1:
        body += struct.pack(">q", 1_600_000_000_000)
    body += struct.pack(">i", 3) + b"key" + struct.pack(">i", 5) + b"value"
    message = struct.pack(">I", 0) + body  # the CRC is not what is being tested here
    return struct.pack(">qi", 0, len(message)) + message


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_message_sets_are_refused_with_a_reason(magic: int) -> None:
    data = legacy_message_set(magic)
    assert len(data) < BATCH_HEADER_SIZE  # short legacy sets must still be recognised
    for call in (parse_header, validate_batch, lambda b: list(iter_batches(b))):
        with pytest.raises(LegacyMessageSetError) as caught:
            call(data)
        assert f"v{magic}" in caught.value.reason
        assert caught.value.error_code == ErrorCode.INVALID_RECORD
    padded = data * 4
    with pytest.raises(LegacyMessageSetError):
        parse_header(padded)


def test_iter_batches_walks_every_batch() -> None:
    batches = [sample_batch(base_offset=i * 5, compression=c) for i, c in enumerate(Compression)]
    buf = b"".join(batches)
    walked = list(iter_batches(memoryview(buf)))
    positions = [0]
    for batch in batches[:-1]:
        positions.append(positions[-1] + len(batch))
    assert [pos for pos, _ in walked] == positions
    assert [h.base_offset for _, h in walked] == [0, 5, 10, 15, 20]
    assert list(iter_batches(b"")) == []


def test_iter_batches_validates_each_batch_unless_told_not_to() -> None:
    buf = bytearray(sample_batch() + sample_batch())
    buf[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        list(iter_batches(buf))
    assert len(list(iter_batches(buf, validate=False))) == 2


@pytest.mark.parametrize("tail", [1, 11, 12, 60, 61, 62])
def test_partial_tail_stops_quietly_when_allowed(tail: int) -> None:
    whole = sample_batch() + sample_batch(base_offset=5)
    buf = whole + sample_batch(base_offset=10)[:tail]
    walked = list(iter_batches(buf, allow_partial_tail=True))
    assert [h.base_offset for _, h in walked] == [0, 5]
    with pytest.raises(CorruptRecordError):
        list(iter_batches(buf))


def test_partial_tail_still_reports_corruption_before_it() -> None:
    buf = bytearray(sample_batch() + sample_batch()[:30])
    buf[40] ^= 1
    with pytest.raises(CorruptRecordError):
        list(iter_batches(buf, allow_partial_tail=True))


def test_empty_batch_is_valid() -> None:
    batch = encode_batch([], base_timestamp=5)
    header = validate_batch(batch)
    assert header.records_count == 0 and header.last_offset_delta == -1
    assert header.size == BATCH_HEADER_SIZE
    assert decode_records(batch)[1] == []


def test_unknown_magic_is_refused_by_the_full_check_wherever_the_batch_starts() -> None:
    # The magic byte is outside the CRC, so the CRC alone would let it through.
    first = sample_batch()
    bad = bytearray(sample_batch(base_offset=5))
    bad[16] = 3
    for buf, pos in ((bad, 0), (first + bad, len(first))):
        with pytest.raises(CorruptRecordError, match="unknown record batch magic 3"):
            validate_batch(buf, pos)


def test_a_legacy_set_after_a_batch_is_reported_at_its_own_offset_and_size() -> None:
    first = sample_batch()
    legacy = bytearray(legacy_message_set(1))
    struct.pack_into(">q", legacy, 0, 42)
    buf = first + bytes(legacy) + bytes(BATCH_HEADER_SIZE)
    with pytest.raises(LegacyMessageSetError) as caught:
        parse_header(buf, len(first))
    size = len(legacy) - LOG_OVERHEAD
    assert caught.value.reason == (
        f"message set v1 (the format before Kafka 0.11) at offset 42, message size {size}: "
        "only record batch v2 is accepted; upgrade the client or enable its v2 message format"
    )


def test_the_sequence_reaches_int32_max_before_it_wraps() -> None:
    top = 2**31 - 1
    header = validate_batch(sample_batch(producer_id=1, producer_epoch=0, base_sequence=top - 4))
    assert header.last_sequence == top
    header = validate_batch(sample_batch(producer_id=1, producer_epoch=0, base_sequence=top - 3))
    assert header.last_sequence == 0


def test_crc_and_log_append_time_cover_only_their_batch_in_a_larger_buffer() -> None:
    # Of different sizes, so reading the first batch's header for the second shows.
    first, second = sample_batch(), encode_batch([(b"k", b"v")], base_offset=5, base_timestamp=1)
    buf = bytearray(first + second + b"trailing")
    assert compute_crc(buf, len(first)) == validate_batch(second).crc
    assert compute_crc(buf) == validate_batch(first).crc
    set_log_append_time(buf, len(first), 77)
    header = validate_batch(buf, len(first))
    assert (header.base_offset, header.max_timestamp) == (5, 77)


def test_truncation_messages_give_the_batch_size_and_what_is_left_of_it() -> None:
    first, second = sample_batch(), sample_batch(base_offset=5)
    buf = bytearray(first + second[:-10])
    message = f"^batch of {len(second)} bytes truncated to {len(second) - 10}$"
    with pytest.raises(CorruptRecordError, match=message):
        validate_batch(buf, len(first))
    with pytest.raises(CorruptRecordError, match=message):
        compute_crc(buf, len(first))
    with pytest.raises(CorruptRecordError, match=message):
        set_log_append_time(buf, len(first), 1)
    with pytest.raises(CorruptRecordError, match=message):
        list(iter_batches(buf, validate=False))
    with pytest.raises(CorruptRecordError, match=r"^record batch header needs 61 bytes, 0 available$"):
        parse_header(b"")


def test_every_batch_is_read_at_its_own_position_with_or_without_a_partial_tail() -> None:
    empty = encode_batch([], base_offset=9, base_timestamp=5)
    buf = sample_batch() + sample_batch(base_offset=5) + empty
    for validate in (True, False):
        for partial in (True, False):
            walked = list(iter_batches(buf, validate=validate, allow_partial_tail=partial))
            assert [h.base_offset for _, h in walked] == [0, 5, 9], (validate, partial)
    assert parse_header(empty).batch_length == BATCH_HEADER_SIZE - LOG_OVERHEAD


def test_header_refusals_name_the_fields_that_disagree() -> None:
    batch = bytearray(sample_batch())
    struct.pack_into(">h", batch, 21, 6)
    resign(batch)
    with pytest.raises(UnsupportedCompressionError, match=r"^unknown compression codec 6$"):
        validate_batch(batch)
    batch = bytearray(sample_batch())
    struct.pack_into(">i", batch, 23, 7)
    resign(batch)
    with pytest.raises(InvalidRecordError, match=r"^last offset delta 7 does not match records count 5$"):
        validate_batch(batch)
    lying = bytearray(encode_batch([(None, b"v")]))
    struct.pack_into(">i", lying, 23, 99)
    struct.pack_into(">i", lying, 57, 100)
    resign(lying)
    payload = len(lying) - BATCH_HEADER_SIZE
    with pytest.raises(InvalidRecordError, match=rf"^100 records cannot fit in {payload} bytes of records$"):
        validate_batch(lying)


def test_a_compressed_batch_without_payload_may_announce_no_records_but_not_one() -> None:
    empty = bytearray(encode_batch([], compression=Compression.GZIP))[:BATCH_HEADER_SIZE]
    struct.pack_into(">i", empty, 8, BATCH_HEADER_SIZE - LOG_OVERHEAD)
    resign(empty)
    assert validate_batch(empty).records_count == 0
    struct.pack_into(">i", empty, 23, 0)
    struct.pack_into(">i", empty, 57, 1)
    resign(empty)
    with pytest.raises(InvalidRecordError, match=r"^1 records announced in an empty batch$"):
        validate_batch(empty)
