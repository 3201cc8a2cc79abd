"""Transaction markers and the deep record check."""

from __future__ import annotations

import pytest
from kafka.record.default_records import ControlRecord, DefaultRecordBatch

from broker.protocol.records import (
    ControlType,
    InvalidRecordError,
    Record,
    decode_end_txn_marker,
    decode_records,
    encode_batch,
    encode_end_txn_marker,
    validate_batch,
    validate_records,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("control_type", list(ControlType))
def test_end_txn_marker_batch(control_type: ControlType) -> None:
    batch = encode_end_txn_marker(
        control_type, producer_id=77, producer_epoch=3, coordinator_epoch=12, base_offset=40
    )
    header = validate_records(batch)
    assert header.is_control and header.is_transactional
    assert (header.producer_id, header.producer_epoch) == (77, 3)
    assert header.records_count == 1 and header.base_offset == 40
    _, records = decode_records(batch)
    assert decode_end_txn_marker(records[0]) == (control_type, 12)


@pytest.mark.parametrize("control_type", list(ControlType))
def test_kafka_python_reads_our_markers(control_type: ControlType) -> None:
    batch = encode_end_txn_marker(control_type, producer_id=5, producer_epoch=0)
    theirs = DefaultRecordBatch(batch)
    assert theirs.validate_crc() and theirs.is_control_batch and theirs.is_transactional
    (record,) = list(theirs)
    assert isinstance(record, ControlRecord)
    assert record.version == 0
    assert record.commit is (control_type is ControlType.COMMIT)
    assert record.abort is (control_type is ControlType.ABORT)


def test_markers_that_are_not_commit_or_abort_are_refused() -> None:
    leader_change = Record(0, 0, b"\x00\x00\x00\x02", b"\x00\x00", [])
    with pytest.raises(InvalidRecordError, match="type 2"):
        decode_end_txn_marker(leader_change)
    with pytest.raises(InvalidRecordError):
        decode_end_txn_marker(Record(0, 0, None, None, []))
    with pytest.raises(InvalidRecordError):
        decode_end_txn_marker(Record(0, 0, b"\x00\x00\x00\x01", b"\x00", []))


def test_validate_records_refuses_offset_deltas_out_of_sequence() -> None:
    records = [Record(0, 0, None, b"a"), Record(5, 0, None, b"b"), Record(2, 0, None, b"c")]
    batch = encode_batch(records)
    validate_batch(batch)  # the header agrees with itself: three records, last delta 2
    with pytest.raises(InvalidRecordError, match="record 1 has offset delta 5"):
        validate_records(batch)
