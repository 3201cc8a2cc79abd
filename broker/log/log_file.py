"""One log file: batches stored back to back, as they travel on the wire, plus its
offset and time indexes. Files are named by the first offset they hold."""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from broker.log.errors import LogStorageError
from broker.log.index import OffsetIndex, TimeIndex
from broker.log.io_backend import IoBackend, WriteChunk, storage_error
from broker.log.stamping import BatchSpan
from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    RecordError,
    parse_header,
    validate_batch,
)

logger = logging.getLogger("walrus.log")

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"

# baseOffset, batchLength; lastOffsetDelta sits at byte 23 of a batch.
_OFFSET_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA_AT = 23
_INT32 = struct.Struct(">i")
_SCAN_CHUNK = 1 << 20
_IOV_MAX = 1024
NO_TIMESTAMP = -1


def file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


@dataclass(slots=True)
class ScanCut:
    """What recovery cut from a file: from which byte, and why."""

    position: int
    bytes_cut: int
    reason: str


class LogFile:
    """A file of whole batches. Only the last file of a log is ever appended to."""

    __slots__ = (
        "_bytes_since_index",
        "base_offset",
        "created_ms",
        "directory",
        "fd",
        "index_interval",
        "max_timestamp",
        "max_timestamp_offset",
        "next_offset",
        "offset_index",
        "path",
        "size",
        "time_index",
    )

    def __init__(self, directory: str, base_offset: int, index_interval: int, fd: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.path = os.path.join(directory, file_name(base_offset, LOG_SUFFIX))
        self.fd = fd
        self.index_interval = index_interval
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.max_timestamp_offset = base_offset
        self.created_ms = int(time.time() * 1000)
        self._bytes_since_index = 0
        self.offset_index = OffsetIndex(
            os.path.join(directory, file_name(base_offset, INDEX_SUFFIX)), base_offset
        )
        self.time_index = TimeIndex(
            os.path.join(directory, file_name(base_offset, TIME_INDEX_SUFFIX)), base_offset
        )

    # -- creation -------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str, base_offset: int, index_interval: int) -> LogFile:
        path = os.path.join(directory, file_name(base_offset, LOG_SUFFIX))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise storage_error(f"create {path}", exc) from exc
        log_file = cls(directory, base_offset, index_interval, fd)
        for stale in (log_file.offset_index.path, log_file.time_index.path):
            if os.path.exists(stale):
                os.unlink(stale)
        return log_file

    @classmethod
    def open_existing(cls, directory: str, base_offset: int, index_interval: int) -> LogFile:
        path = os.path.join(directory, file_name(base_offset, LOG_SUFFIX))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise storage_error(f"open {path}", exc) from exc
        log_file = cls(directory, base_offset, index_interval, fd)
        log_file.size = size
        return log_file

    # -- recovery ---------------------------------------------------------------------

    def recover(self, recovery_point: int) -> ScanCut | None:
        """Bring the in-memory state in line with the file, cutting a bad tail.

        Batches that start before `recovery_point` were flushed and checked before, so
        only their headers are read; from the last index entry at or before it, every
        batch's CRC is verified. The first batch that fails ends the file there.
        """
        index_found = os.path.exists(self.offset_index.path)
        index_ok = self.offset_index.load(self.size)
        time_ok = index_ok and self.time_index.load()
        if self.size and not (index_ok and time_ok):
            which = "offset" if not index_ok else "time"
            if index_found and os.path.exists(self.time_index.path):
                logger.warning("%s: %s index is corrupt; rebuilding both", self.path, which)
            else:
                # Expected after a crash: indexes reach the disk only at checkpoints.
                logger.info("%s: %s index missing; rebuilding both", self.path, which)
        if not time_ok:
            self.time_index.reset()
            self.offset_index.reset()
        # Index entries past the recovery point may describe data that never reached
        # the disk; drop them and let the scan re-create them.
        start_offset, start_pos = self.offset_index.lookup(
            max(recovery_point - 1, self.base_offset)
        )
        if recovery_point <= self.base_offset:
            start_offset, start_pos = self.base_offset, 0
        if start_pos and not self._batch_starts_at(start_pos, start_offset):
            logger.warning("%s: index points into the middle of a batch; rebuilding it", self.path)
            self.offset_index.reset()
            self.time_index.reset()
            start_offset, start_pos = self.base_offset, 0
        self.offset_index.truncate_after_position(start_pos + 1)
        self.time_index.truncate_after_offset(start_offset)
        if self.time_index.timestamps:
            self.max_timestamp = self.time_index.timestamps[-1]
            self.max_timestamp_offset = self.time_index.offsets[-1]
        cut = self._scan(start_pos, start_offset, verify_from=recovery_point)
        self._bytes_since_index = 0
        if self.size:
            # As Kafka does, a file's age for segment.ms counts from its first batch.
            first = parse_header(self._pread(BATCH_HEADER_SIZE, 0))
            if first.max_timestamp >= 0:
                self.created_ms = first.max_timestamp
        return cut

    def _batch_starts_at(self, position: int, offset: int) -> bool:
        head = self._pread(BATCH_HEADER_SIZE, position)
        if len(head) < BATCH_HEADER_SIZE:
            return False
        try:
            return parse_header(head).base_offset == offset
        except RecordError:
            return False

    def _scan(self, position: int, expected_offset: int, *, verify_from: int) -> ScanCut | None:
        buf = b""
        buf_pos = position
        end = self.size
        pos = position
        offset = expected_offset
        reason = ""
        last_indexed = self.offset_index.positions[-1] if self.offset_index.positions else -1
        since_index = 0
        while pos < end:
            rel = pos - buf_pos
            if len(buf) - rel < BATCH_HEADER_SIZE:
                buf = self._pread(min(end - pos, max(_SCAN_CHUNK, BATCH_HEADER_SIZE)), pos)
                buf_pos, rel = pos, 0
                if len(buf) < BATCH_HEADER_SIZE:
                    reason = f"torn batch header ({len(buf)} bytes)"
                    break
            try:
                header = parse_header(buf, rel)
            except RecordError as exc:
                reason = exc.reason
                break
            if header.size > end - pos:
                reason = f"torn batch: {header.size} bytes announced, {end - pos} present"
                break
            if header.base_offset != offset:
                reason = f"batch offset {header.base_offset} where {offset} was expected"
                break
            if header.last_offset_delta < 0:
                reason = f"negative last offset delta {header.last_offset_delta}"
                break
            if rel + header.size > len(buf):
                buf = self._pread(max(header.size, _SCAN_CHUNK), pos)
                buf_pos, rel = pos, 0
            if header.next_offset > verify_from:
                try:
                    header = validate_batch(buf, rel)
                except RecordError as exc:
                    reason = exc.reason
                    break
            # Same order as append: the batch's timestamp counts before its index entry.
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.max_timestamp_offset = header.base_offset
            if pos > last_indexed and (since_index >= self.index_interval or pos == 0):
                self._add_index_entry(offset, pos)
                since_index = 0
            since_index += header.size
            offset = header.next_offset
            pos += header.size
        self.next_offset = offset
        if pos >= end:
            return None
        cut = ScanCut(position=pos, bytes_cut=end - pos, reason=reason)
        self.truncate_at(pos)
        return cut

    def _pread(self, length: int, position: int) -> bytes:
        try:
            return os.pread(self.fd, length, position)
        except OSError as exc:
            raise storage_error(f"read {self.path}", exc) from exc

    def _add_index_entry(self, offset: int, position: int) -> None:
        self.offset_index.append(offset, position)
        self.time_index.maybe_append(self.max_timestamp, self.max_timestamp_offset)

    # -- append ---------------------------------------------------------------------

    def append(
        self,
        backend: IoBackend,
        chunks: list[WriteChunk],
        size: int,
        spans: list[BatchSpan],
        sync: bool,
    ) -> None:
        """Write `chunks` (whole batches, `size` bytes) at the end; on failure, the file
        is cut back and the in-memory state is left as it was."""
        start = self.size
        self._write(backend, chunks, start, size, sync)
        since = self._bytes_since_index
        interval = self.index_interval
        for position, batch_size, base_offset, _, max_timestamp in spans:
            if max_timestamp > self.max_timestamp:
                self.max_timestamp = max_timestamp
                self.max_timestamp_offset = base_offset
            if since >= interval or start + position == 0:
                self.offset_index.append(base_offset, start + position)
                self.time_index.maybe_append(self.max_timestamp, self.max_timestamp_offset)
                since = 0
            since += batch_size
        self._bytes_since_index = since
        self.size = start + size
        self.next_offset = spans[-1][3]

    def append_one(
        self,
        backend: IoBackend,
        head: bytes,
        body: memoryview,
        size: int,
        base_offset: int,
        next_offset: int,
        max_timestamp: int,
        sync: bool,
    ) -> None:
        """`append` for a single batch given as its new head and the caller's rest:
        the produce path's common case, without the per-batch lists."""
        start = self.size
        self._write(backend, [head, body], start, size, sync)
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.max_timestamp_offset = base_offset
        if self._bytes_since_index >= self.index_interval or start == 0:
            self.offset_index.append(base_offset, start)
            self.time_index.maybe_append(self.max_timestamp, self.max_timestamp_offset)
            self._bytes_since_index = size
        else:
            self._bytes_since_index += size
        self.size = start + size
        self.next_offset = next_offset

    def _write(
        self, backend: IoBackend, chunks: list[WriteChunk], start: int, size: int, sync: bool
    ) -> None:
        """Write `chunks` at `start`; on failure, cut the file back and raise."""
        try:
            # Both backends write page-cache-only appends with pwritev; doing it here
            # saves two Python calls per append on the hottest path.
            if sync or len(chunks) > _IOV_MAX or os.pwritev(self.fd, chunks, start) != size:
                backend.write(self.fd, chunks, start, sync, size)
        except OSError as exc:
            self._undo_partial_write(start)
            raise storage_error("write", exc) from exc
        except LogStorageError:
            self._undo_partial_write(start)
            raise

    def _undo_partial_write(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            # The bytes past `size` stay invisible (reads stop at self.size) and the
            # next append overwrites them; recovery cuts them if we crash first.
            logger.error("%s: could not cut a failed write back to %d: %s", self.path, size, exc)

    def sync(self, backend: IoBackend) -> None:
        backend.sync(self.fd)

    def write_indexes(self, *, sync: bool = False, final: bool = False) -> None:
        if final and self.next_offset > self.base_offset:
            # The last time entry carries the file's maximum, read back after a restart.
            self.time_index.maybe_append(self.max_timestamp, self.max_timestamp_offset)
        try:
            self.offset_index.write_out(sync=sync)
            self.time_index.write_out(sync=sync)
        except OSError as exc:
            raise storage_error(f"write index of {self.path}", exc) from exc

    # -- read -----------------------------------------------------------------------

    def read(
        self, offset: int, max_bytes: int, max_offset: int | None
    ) -> tuple[memoryview | bytes, int, int]:
        """Whole batches from the one containing `offset`: (data, first, next offset).

        At least one batch comes back, even when it is larger than `max_bytes`; none
        starts at or after `max_offset`.
        """
        _, pos = self.offset_index.lookup(offset)
        end = self.size
        if pos >= end:
            return b"", offset, offset
        # One read usually covers the walk from the index entry plus the answer.
        want = min(end - pos, max_bytes + self.index_interval + BATCH_HEADER_SIZE)
        window = self._pread(want, pos)
        window_pos = pos
        while True:
            rel = pos - window_pos
            if len(window) - rel < BATCH_HEADER_SIZE:
                window = self._pread(min(end - pos, want), pos)
                window_pos, rel = pos, 0
            base, length = _OFFSET_LENGTH.unpack_from(window, rel)
            last = base + _INT32.unpack_from(window, rel + _LAST_OFFSET_DELTA_AT)[0]
            if last >= offset:
                break
            pos += length + LOG_OVERHEAD
            if pos >= end:
                return b"", offset, offset
        if max_offset is not None and base >= max_offset:
            return b"", base, base
        first_size = length + LOG_OVERHEAD
        budget = max(max_bytes, first_size)
        if len(window) - rel < min(budget, end - pos):
            window = self._pread(min(budget, end - pos), pos)
            window_pos, rel = pos, 0
        limit = min(rel + budget, len(window))
        cursor = rel + first_size
        next_offset = last + 1
        # Index entries are batch starts: jump to the last one that still fits instead
        # of walking every header in between.
        index = self.offset_index
        jump = bisect_right(index.positions, window_pos + limit) - 1
        if max_offset is not None:
            jump = min(jump, bisect_left(index.offsets, max_offset) - 1)
        if jump >= 0 and index.positions[jump] > window_pos + cursor:
            cursor = index.positions[jump] - window_pos
            next_offset = index.offsets[jump]
        while cursor + BATCH_HEADER_SIZE <= limit:
            base_n, length = _OFFSET_LENGTH.unpack_from(window, cursor)
            size = length + LOG_OVERHEAD
            if cursor + size > limit or (max_offset is not None and base_n >= max_offset):
                break
            next_offset = base_n + _INT32.unpack_from(window, cursor + _LAST_OFFSET_DELTA_AT)[0] + 1
            cursor += size
        return memoryview(window)[rel:cursor], base, next_offset

    def position_of(self, offset: int) -> tuple[int, int] | None:
        """(position, base offset) of the batch containing `offset`, or None past the end."""
        _, pos = self.offset_index.lookup(offset)
        while pos < self.size:
            head = self._pread(BATCH_HEADER_SIZE, pos)
            base, length = _OFFSET_LENGTH.unpack_from(head, 0)
            last = base + _INT32.unpack_from(head, _LAST_OFFSET_DELTA_AT)[0]
            if last >= offset:
                return pos, base
            pos += length + LOG_OVERHEAD
        return None

    def batches_reaching(
        self, offset: int, timestamp: int, start: int, lock: AbstractContextManager[object]
    ) -> Iterator[bytes | memoryview]:
        """Whole batches, from the one containing `offset` on, whose max timestamp
        reaches `timestamp` and which end after offset `start` (ListOffsets by time).

        Only headers are parsed on the way. `lock` (the log's) is held for each read and
        released between them, so that a long walk, run off the event loop, never holds
        appends up for more than one read; a file deleted meanwhile ends the walk.
        """
        with lock:
            found = self.position_of(offset) if self.fd >= 0 else None
        if found is None:
            return
        pos = found[0]
        while True:
            with lock:
                if self.fd < 0 or pos >= self.size:
                    return
                window = self._pread(min(self.size - pos, _SCAN_CHUNK), pos)
            rel = 0
            while rel + BATCH_HEADER_SIZE <= len(window):
                try:
                    header = parse_header(window, rel)
                except RecordError as exc:
                    # Recovery checked every header; one that is bad now is a disk fault.
                    logger.error("%s: bad batch header at byte %d: %s", self.path, pos + rel, exc)
                    return
                size = header.size
                if header.max_timestamp >= timestamp and header.next_offset > start:
                    if rel + size <= len(window):
                        yield memoryview(window)[rel : rel + size]
                    else:
                        with lock:
                            batch = self._pread(size, pos + rel) if self.fd >= 0 else b""
                        if len(batch) < size:
                            return
                        yield batch
                rel += size
            if rel == 0:
                return
            pos += rel

    # -- cut, close, delete ---------------------------------------------------------

    def truncate_at(self, position: int) -> None:
        try:
            os.ftruncate(self.fd, position)
        except OSError as exc:
            raise storage_error(f"truncate {self.path}", exc) from exc
        self.size = position
        self.offset_index.truncate_after_position(position)
        self.time_index.truncate_after_offset(self.next_offset)
        self._bytes_since_index = 0
        self.offset_index.write_out()
        self.time_index.write_out()

    def truncate_to_offset(self, offset: int) -> bool:
        """Cut from the batch containing `offset`; False when it lies past the end."""
        found = self.position_of(offset)
        if found is None:
            return False
        position, base = found
        self.next_offset = base
        self.truncate_at(position)
        self._recompute_max_timestamp()
        return True

    def _recompute_max_timestamp(self) -> None:
        self.max_timestamp = NO_TIMESTAMP
        self.max_timestamp_offset = self.base_offset
        if self.size:
            data = self._pread(self.size, 0)
            rel = 0
            while rel + BATCH_HEADER_SIZE <= len(data):
                header = parse_header(data, rel)
                if header.max_timestamp > self.max_timestamp:
                    self.max_timestamp = header.max_timestamp
                    self.max_timestamp_offset = header.base_offset
                rel += header.size
        self.time_index.reset()
        if self.size:
            self.time_index.maybe_append(self.max_timestamp, self.max_timestamp_offset)
        self.time_index.write_out()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete(self) -> None:
        self.close()
        for path in (self.path, self.offset_index.path, self.time_index.path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
