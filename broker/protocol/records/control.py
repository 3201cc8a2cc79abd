"""Control batches: the transaction markers a broker writes into a partition.

A control batch is transactional, flagged as control, and holds one record whose key
names the marker (version int16, type int16) and whose value, for commit and abort,
carries the transaction coordinator's epoch (version int16, epoch int32).
"""

from __future__ import annotations

import struct
from enum import IntEnum

from .builder import encode_batch
from .exceptions import InvalidRecordError
from .record import Record

_KEY = struct.Struct(">hh")
_END_TXN_VALUE = struct.Struct(">hi")
CONTROL_KEY_VERSION = 0
END_TXN_MARKER_VERSION = 0


class ControlType(IntEnum):
    ABORT = 0
    COMMIT = 1


def encode_end_txn_marker(
    control_type: ControlType,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int = 0,
    base_offset: int = 0,
    timestamp: int | None = None,
    partition_leader_epoch: int = -1,
) -> bytes:
    """One commit or abort marker batch for a producer's transaction."""
    record = Record(
        offset_delta=0,
        timestamp_delta=0,
        key=_KEY.pack(CONTROL_KEY_VERSION, control_type),
        value=_END_TXN_VALUE.pack(END_TXN_MARKER_VERSION, coordinator_epoch),
        headers=[],
    )
    return encode_batch(
        [record],
        base_offset=base_offset,
        base_timestamp=timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


def decode_end_txn_marker(record: Record) -> tuple[ControlType, int]:
    """(commit or abort, coordinator epoch) of a control record."""
    if record.key is None or len(record.key) < _KEY.size:
        raise InvalidRecordError("control record key is missing or short")
    _version, raw_type = _KEY.unpack_from(record.key)
    try:
        control_type = ControlType(raw_type)
    except ValueError:
        raise InvalidRecordError(
            f"control record type {raw_type} is not a transaction marker"
        ) from None
    if record.value is None or len(record.value) < _END_TXN_VALUE.size:
        raise InvalidRecordError("transaction marker value is missing or short")
    _value_version, coordinator_epoch = _END_TXN_VALUE.unpack_from(record.value)
    return control_type, coordinator_epoch
