"""Record batch v2 (the Kafka 0.11+ message format) for the broker.

``broker.protocol.records`` is the import path for everything here; the submodules
split it by concern: batch headers, codecs, records, building batches.
"""

from .batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    Compression,
    TimestampType,
    compute_crc,
    iter_batches,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batch,
)
from .builder import encode_batch, reframe_batch
from .codecs import DEFAULT_MAX_DECOMPRESSED, compress, decompress
from .contents import check_batch_contents, check_records, check_records_count, records_section
from .control import ControlType, decode_end_txn_marker, encode_end_txn_marker
from .exceptions import (
    CorruptRecordError,
    DecompressedTooLargeError,
    InvalidRecordError,
    LegacyMessageSetError,
    RecordError,
    UnsupportedCompressionError,
)
from .record import Header, Record, decode_records, validate_records

__all__ = [
    "BATCH_HEADER_SIZE",
    "DEFAULT_MAX_DECOMPRESSED",
    "LOG_OVERHEAD",
    "BatchHeader",
    "Compression",
    "ControlType",
    "CorruptRecordError",
    "DecompressedTooLargeError",
    "Header",
    "InvalidRecordError",
    "LegacyMessageSetError",
    "Record",
    "RecordError",
    "TimestampType",
    "UnsupportedCompressionError",
    "check_batch_contents",
    "check_records",
    "check_records_count",
    "compress",
    "compute_crc",
    "decode_end_txn_marker",
    "decode_records",
    "decompress",
    "encode_batch",
    "encode_end_txn_marker",
    "iter_batches",
    "parse_header",
    "records_section",
    "reframe_batch",
    "set_base_offset",
    "set_log_append_time",
    "set_partition_leader_epoch",
    "validate_batch",
    "validate_records",
]
