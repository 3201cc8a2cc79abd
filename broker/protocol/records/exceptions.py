"""Why a record batch was refused, each mapped to the error code a produce response carries."""

from __future__ import annotations

from ..errors import ErrorCode


class RecordError(Exception):
    """Base of every record-batch failure; ``reason`` says what was wrong, for logs and responses."""

    error_code: ErrorCode = ErrorCode.CORRUPT_MESSAGE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CorruptRecordError(RecordError):
    """The bytes cannot be trusted: CRC mismatch, impossible lengths, truncation, garbage."""

    error_code = ErrorCode.CORRUPT_MESSAGE


class DecompressedTooLargeError(CorruptRecordError):
    """A compressed records section expands past the bound its reader set: a zip bomb,
    or a batch larger than the broker takes. Callers that decompress in stages tell it
    from garbage by this class."""


class InvalidRecordError(RecordError):
    """The bytes are intact but describe something the broker refuses."""

    error_code = ErrorCode.INVALID_RECORD


class LegacyMessageSetError(RecordError):
    """A pre-0.11 message set (magic 0 or 1); only record batch v2 is stored.

    Kafka answers such input in a Produce v3+ request with INVALID_RECORD, so that is
    the default code; a handler for older request versions may choose another.
    """

    error_code = ErrorCode.INVALID_RECORD


class UnsupportedCompressionError(RecordError):
    """A compression codec outside none/gzip/snappy/lz4/zstd."""

    error_code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
