"""The Walrus log engine: segment files, indexes, crash recovery, retention.

No network code and no asyncio here; `AsyncLog` offers the same log to an event loop,
with fdatasync on a flusher thread.
"""

from broker.log.config import LogConfig
from broker.log.epochs import UNDEFINED_EPOCH, UNDEFINED_OFFSET, EpochEndOffset
from broker.log.errors import (
    FencedEpochError,
    InvalidAppendError,
    InvalidTruncationError,
    LogClosedError,
    LogError,
    LogStorageError,
    OffsetNotHeldError,
    OffsetOutOfRangeError,
    PartitionOfflineError,
    RecordTooLargeError,
)
from broker.log.flusher import AsyncLog, Flusher
from broker.log.io_backend import IoBackend, PosixBackend, UringBackend, open_backend
from broker.log.manager import LogManager, partition_dir_name
from broker.log.manifest import SegmentInfo
from broker.log.partition_log import AppendResult, PartitionLog, ReadResult
from broker.log.recovery import RecoveryReport

__all__ = [
    "UNDEFINED_EPOCH",
    "UNDEFINED_OFFSET",
    "AppendResult",
    "AsyncLog",
    "EpochEndOffset",
    "FencedEpochError",
    "Flusher",
    "InvalidAppendError",
    "InvalidTruncationError",
    "IoBackend",
    "LogClosedError",
    "LogConfig",
    "LogError",
    "LogManager",
    "LogStorageError",
    "OffsetNotHeldError",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "PartitionOfflineError",
    "PosixBackend",
    "ReadResult",
    "RecordTooLargeError",
    "RecoveryReport",
    "SegmentInfo",
    "UringBackend",
    "open_backend",
    "partition_dir_name",
]
