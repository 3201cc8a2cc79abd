"""Errors raised by the log engine."""

from __future__ import annotations


class LogError(Exception):
    """Base class of every error the log engine raises."""


class LogStorageError(LogError):
    """The disk refused an operation (ENOSPC, EIO, EFBIG, ...).

    The broker maps it to KAFKA_STORAGE_ERROR. The log rolls its in-memory state back to
    the last complete batch, so it stays readable and consistent after this error.
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class PartitionOfflineError(LogStorageError):
    """The partition's files could not be read when it was opened (a corrupt manifest,
    an unreadable directory): it stays offline, alone, until the broker restarts with
    them repaired. The broker answers KAFKA_STORAGE_ERROR for it."""


class OffsetOutOfRangeError(LogError):
    """A read asked for an offset below the log start or above the log end."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is outside [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class OffsetNotHeldError(LogError):
    """The offset is inside the log's range but in a gap: it belongs to a Walrus segment
    this replica does not hold (another node led it). `next_offset` is where this
    replica's data resumes."""

    def __init__(self, offset: int, next_offset: int) -> None:
        super().__init__(
            f"offset {offset} is held by another node; data here resumes at {next_offset}"
        )
        self.offset = offset
        self.next_offset = next_offset


class InvalidAppendError(LogError):
    """An append carried bytes that are not whole record batches, or too many of them."""


class LogClosedError(LogError):
    """The log was used after close()."""


class FencedEpochError(LogError):
    """An append or a new segment named an epoch the log must refuse (a stale leader)."""


class RecordTooLargeError(InvalidAppendError):
    """A batch is larger than max.message.bytes."""


class InvalidTruncationError(LogError):
    """truncate_to would cut into a sealed segment, whose offset range never changes."""
