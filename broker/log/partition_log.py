"""A partition replica's log: a directory of files, grouped into Walrus segments.

The core is synchronous and has no network code. One lock guards the in-memory state,
so an async wrapper may run fdatasync (sync_to) on another thread while appends go on.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from broker.log.config import LogConfig
from broker.log.epochs import (
    UNDEFINED_OFFSET,
    EpochEndOffset,
    end_offset_for_epoch,
)
from broker.log.errors import (
    FencedEpochError,
    InvalidAppendError,
    InvalidTruncationError,
    LogClosedError,
    LogError,
    OffsetNotHeldError,
    OffsetOutOfRangeError,
)
from broker.log.io_backend import IoBackend, open_backend, storage_error
from broker.log.log_file import LOG_SUFFIX, NO_TIMESTAMP, LogFile, file_name
from broker.log.manifest import (
    Manifest,
    SegmentInfo,
    fsync_directory,
    load_manifest,
    load_recovery_point,
    save_manifest,
    save_recovery_point,
)
from broker.log.recovery import RecoveryReport, recover_files
from broker.log.retention import FilePredicate, beyond_size, older_than
from broker.log.rolled_sync import SYNCER, RolledFile
from broker.log.stamping import prepare_append, prepare_single
from broker.log.time_search import BatchMatch, first_record_at
from broker.protocol.records import parse_header

logger = logging.getLogger("walrus.log")


# Index entries hold offsets relative to the file's base in 32 bits.
_MAX_RELATIVE_OFFSET = (1 << 31) - 1
# Rewrite the recovery point at most this often under a flush policy.
_CHECKPOINT_INTERVAL_MS = 1000
# A time lookup looks at the records of the batch its time lands in, and of the next
# when the first straddles the log start; batches beyond that are not decoded.
_LOOKED_AT_BATCHES = 2


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class AppendResult:
    first_offset: int
    last_offset: int
    log_end_offset: int
    batch_base_offsets: list[int]
    max_timestamp: int
    max_timestamp_offset: int
    # The broker's timestamp on LogAppendTime topics, else -1 (as ProduceResponse wants).
    log_append_time: int
    size_bytes: int
    # True when the batches are on disk (fdatasync done) before append() returned.
    durable: bool
    # True when the topic's flush policy wants them on disk and append() left that to
    # the caller (defer_sync=True): call sync_to(log_end_offset) before acknowledging.
    needs_sync: bool = False


@dataclass(slots=True)
class ReadResult:
    """Whole batches, as stored: the first contains the requested offset."""

    data: bytes | memoryview
    first_offset: int
    next_offset: int
    log_start_offset: int
    log_end_offset: int

    def __len__(self) -> int:
        return len(self.data)


class PartitionLog:
    def __init__(
        self, directory: str, config: LogConfig, backend: IoBackend, owns_backend: bool
    ) -> None:
        self.directory = directory
        self._config = config
        self.backend = backend
        self._owns_backend = owns_backend
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._files: list[LogFile] = []
        self._bases: list[int] = []
        self._manifest = Manifest()
        self._flushed_offset = 0
        self._unflushed_messages = 0
        self._last_flush_ms = _now_ms()
        self._last_checkpoint_ms = 0
        # Rolled files whose fdatasync is still running in the background, oldest
        # first; the flushed offset stays at or below the first one's base.
        self._unsynced: list[tuple[LogFile, RolledFile]] = []
        self._closed = False
        self.recovery = RecoveryReport()
        # None when no segment takes appends (sealed, or the log is closed).
        self._append_epoch: int | None = None
        self.config = config

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(
        cls,
        directory: str,
        config: LogConfig | None = None,
        *,
        epoch: int = 0,
        backend: IoBackend | None = None,
    ) -> PartitionLog:
        """Open (creating if needed) the log in `directory`, recovering it first.

        When the directory holds no active segment, one is begun with `epoch`.
        """
        config = config or LogConfig()
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise storage_error(f"create {directory}", exc) from exc
        owns = backend is None
        log = cls(directory, config, backend or open_backend(config.io_backend), owns)
        try:
            log._load()
            if not log._manifest.segments or log._manifest.segments[-1].sealed:
                log._begin(epoch)
        except BaseException:
            log._close_files()
            if owns:
                log.backend.close()
            raise
        return log

    def _load(self) -> None:
        manifest = load_manifest(self.directory)
        self._manifest = manifest or Manifest()
        recovery_point = load_recovery_point(self.directory)
        self._files = recover_files(
            self.directory,
            recovery_point,
            self.config.index_interval_bytes,
            {segment.base_offset for segment in self._manifest.segments},
            self.recovery,
        )
        interval = self.config.index_interval_bytes
        if not self._files:
            start = self._manifest.log_start_offset
            if self._manifest.segments:
                start = max(start, self._manifest.segments[0].base_offset)
            self._files.append(LogFile.create(self.directory, start, interval))
            fsync_directory(self.directory)
        self._bases = [f.base_offset for f in self._files]
        leo = self._files[-1].next_offset
        self._reconcile_segments(leo)
        self._refresh_append_epoch()
        first = self._files[0].base_offset
        self._manifest.log_start_offset = min(max(self._manifest.log_start_offset, first), leo)
        self._flushed_offset = leo
        save_manifest(self.directory, self._manifest)
        save_recovery_point(self.directory, min(recovery_point, leo))

    def _reconcile_segments(self, leo: int) -> None:
        """Make the manifest agree with the data after a cut at recovery."""
        segments = self._manifest.segments
        while segments and segments[-1].base_offset > leo:
            gone = segments.pop()
            logger.error(
                "log recovery: segment of epoch %d at %d lost its data",
                gone.epoch,
                gone.base_offset,
            )
        if segments and segments[-1].end_offset is not None and segments[-1].end_offset > leo:
            last = segments[-1]
            logger.error(
                "log recovery: sealed segment of epoch %d ends at %d but data ends at %d; reopening it",
                last.epoch,
                last.end_offset,
                leo,
            )
            last.end_offset = None

    def close(self) -> None:
        """Flush everything, write indexes and the recovery point, release the files."""
        with self._sync_lock, self._lock:
            if self._closed:
                return
            try:
                if self._files:
                    self._sync_rolled_files()
                    active = self._files[-1]
                    active.sync(self.backend)
                    for log_file in self._files:
                        log_file.write_indexes(final=True)
                    save_recovery_point(self.directory, active.next_offset)
            finally:
                self._closed = True
                self._append_epoch = None
                self._close_files()
                if self._owns_backend:
                    self.backend.close()

    def _close_files(self) -> None:
        for log_file in self._files:
            log_file.close()

    def __enter__(self) -> PartitionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.directory} is closed")

    # ------------------------------------------------------------------ properties

    @property
    def config(self) -> LogConfig:
        return self._config

    @config.setter
    def config(self, config: LogConfig) -> None:
        """A new topic configuration (AlterConfigs) applies from the next operation on;
        files already written keep their size, new rolls follow the new settings."""
        with self._lock:
            self._config = config
            self._stamps_append_time = config.message_timestamp_type == "LogAppendTime"
            self._max_batch_bytes = config.max_message_bytes
            self._segment_bytes = config.segment_bytes
            self._segment_ms = config.segment_ms
            self._has_flush_policy = (
                config.flush_messages is not None or config.flush_ms is not None
            )

    @property
    def log_start_offset(self) -> int:
        return self._manifest.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._files[-1].next_offset

    @property
    def flushed_offset(self) -> int:
        """Every offset below this is on disk (fdatasync done)."""
        return self._flushed_offset

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self._files)

    @property
    def active_epoch(self) -> int:
        return self._manifest.segments[-1].epoch

    @property
    def file_count(self) -> int:
        return len(self._files)

    @property
    def largest_timestamp(self) -> int:
        """The largest batch max timestamp in the log, or -1 when it holds none."""
        return max((f.max_timestamp for f in self._files), default=NO_TIMESTAMP)

    def largest_timestamp_offset(self) -> tuple[int, int]:
        """(timestamp, offset) of the record with the largest timestamp (ListOffsets -3);
        (-1, -1) for an empty log. Safe to call off the event loop (see
        offset_for_timestamp)."""
        with self._lock:
            best: LogFile | None = None
            for log_file in self._files:
                if log_file.next_offset > log_file.base_offset and (
                    best is None or log_file.max_timestamp > best.max_timestamp
                ):
                    best = log_file
            if best is None or best.max_timestamp == NO_TIMESTAMP:
                return NO_TIMESTAMP, UNDEFINED_OFFSET
            target, holder = best.max_timestamp, best.max_timestamp_offset
        for raw in itertools.islice(best.batches_reaching(holder, target, 0, self._lock), 1):
            match = first_record_at(raw, target, 0)
            if match is not None:
                self._note_stand_in(match, target)
                return target, match.offset
        return target, holder

    # ------------------------------------------------------------------ append

    def append(
        self,
        batches: bytes | bytearray | memoryview,
        *,
        epoch: int | None = None,
        log_append_time: int | None = None,
        defer_sync: bool = False,
        replicated: bool = False,
    ) -> AppendResult:
        """Append already-validated batches, assigning dense offsets.

        replicated: the batches come from the segment's leader, offsets and timestamps
        already assigned there; the first must start exactly at this log's end, and
        LogAppendTime is not stamped again.

        The caller's bytes are written as they are, except baseOffset and (set to the
        segment's epoch) partitionLeaderEpoch, both outside the CRC, and on LogAppendTime
        topics the broker time; the caller's buffer itself is not modified. The write is
        durable before returning when the flush policy says so, unless defer_sync is set
        (then result.needs_sync tells the caller to call sync_to before acknowledging).
        """
        with self._lock:
            active_epoch = self._append_epoch
            if active_epoch is None or (epoch is not None and epoch != active_epoch):
                self._refuse_epoch(epoch)
            active = self._files[-1]
            first_offset = active.next_offset
            if replicated:
                if len(batches) < 8 or int.from_bytes(batches[:8], "big") != first_offset:
                    raise InvalidAppendError(
                        f"replicated batches must start at the log end {first_offset}"
                    )
            elif log_append_time is None and self._stamps_append_time:
                log_append_time = _now_ms()
            single = None
            if log_append_time is None:
                single = prepare_single(batches, first_offset, active_epoch, self._max_batch_bytes)
            if single is not None:
                head, body, total, end_offset, top_timestamp = single
                top_offset = first_offset
                base_offsets = [first_offset]
            else:
                chunks, spans, total = prepare_append(
                    batches, first_offset, active_epoch, self._max_batch_bytes, log_append_time
                )
                end_offset = spans[-1][3]
                # span = (position, size, base_offset, next_offset, max_timestamp)
                top = spans[0] if len(spans) == 1 else max(spans, key=lambda span: span[4])
                top_timestamp, top_offset = top[4], top[2]
                base_offsets = [span[2] for span in spans]
            now = _now_ms()
            if active.size and (
                active.size + total > self._segment_bytes
                or now - active.created_ms >= self._segment_ms
                or end_offset - active.base_offset > _MAX_RELATIVE_OFFSET
            ):
                active = self._roll()
            records = end_offset - first_offset
            policy_sync = self._has_flush_policy and self._policy_wants_sync(records, now)
            sync_now = policy_sync and not defer_sync
            if sync_now and self._unsynced:
                self._sync_rolled_files()
            if single is not None:
                active.append_one(
                    self.backend, head, body, total, first_offset, end_offset, top_timestamp, sync_now
                )
            else:
                active.append(self.backend, chunks, total, spans, sync_now)
            self._unflushed_messages += records
            if sync_now:
                self._mark_flushed(end_offset, now)
            return AppendResult(
                first_offset,
                end_offset - 1,
                end_offset,
                base_offsets,
                top_timestamp,
                top_offset,
                -1 if log_append_time is None else log_append_time,
                total,
                sync_now or self._flushed_offset >= end_offset,
                policy_sync and defer_sync,
            )

    def _refresh_append_epoch(self) -> None:
        segments = self._manifest.segments
        writable = not self._closed and segments and segments[-1].end_offset is None
        self._append_epoch = segments[-1].epoch if writable else None

    def _refuse_epoch(self, epoch: int | None) -> NoReturn:
        self._check_open()
        segment = self._manifest.segments[-1]
        if segment.sealed:
            raise FencedEpochError(f"segment of epoch {segment.epoch} is sealed")
        raise FencedEpochError(
            f"append for epoch {epoch}, but the active segment has epoch {segment.epoch}"
        )

    def _start_after_gap(self, base_offset: int) -> None:
        """Make the next file start at `base_offset`, past the log end. An empty active
        file is replaced rather than kept in front of the gap."""
        active = self._files[-1]
        if active.size == 0:
            self._files.pop()
            self._bases.pop()
            active.delete()
            self._open_new_file(base_offset)
        else:
            self._roll(base_offset)
        if len(self._files) == 1:
            # Nothing held before the gap: this replica's data starts here.
            self._manifest.log_start_offset = base_offset
        self._flushed_offset = max(self._flushed_offset, base_offset)

    def _roll(self, next_base: int | None = None) -> LogFile:
        """Close the active file for writes and start a new one at the log end (or at
        `next_base`, after a gap). The old file is synced in the background (see
        rolled_sync): the flushed offset passes it once that is done."""
        active = self._files[-1]
        if active.size == 0:
            return active
        active.write_indexes(final=True)
        try:
            fd = os.dup(active.fd)
        except OSError:
            # Out of descriptors: sync here rather than not at all.
            active.sync(self.backend)
            active.write_indexes(sync=True)
            self._mark_flushed(active.next_offset, _now_ms())
        else:
            paths = (active.offset_index.path, active.time_index.path)
            rolled = RolledFile(fd, paths, self._rolled_file_synced)
            self._unsynced.append((active, rolled))
            SYNCER.submit(rolled)
        return self._open_new_file(active.next_offset if next_base is None else next_base)

    def _rolled_file_synced(self, rolled: RolledFile, error: OSError | None) -> None:
        """Called from the background syncer."""
        with self._lock:
            where = next((i for i, (_, r) in enumerate(self._unsynced) if r is rolled), None)
            if where is None or self._closed:
                return  # synced on the append path meanwhile, or deleted
            log_file = self._unsynced[where][0]
            if error is not None:
                # Left in the list: the next sync the policy asks for tries again and
                # reports the error to its caller.
                logger.error("%s: background fdatasync failed: %s", log_file.path, error)
                return
            del self._unsynced[where]
            if where == 0 and log_file.next_offset > self._flushed_offset:
                self._flushed_offset = log_file.next_offset
                save_recovery_point(self.directory, self._flushed_offset)

    def _sync_rolled_files(self) -> None:
        """Sync, here and now, the rolled files still waiting for the background."""
        while self._unsynced:
            self._unsynced[0][0].sync(self.backend)
            del self._unsynced[0]

    def _forget_unsynced(self, gone: LogFile) -> None:
        self._unsynced = [entry for entry in self._unsynced if entry[0] is not gone]

    def _open_new_file(self, base_offset: int) -> LogFile:
        new = LogFile.create(self.directory, base_offset, self.config.index_interval_bytes)
        try:
            fsync_directory(self.directory)
        except OSError as exc:
            new.delete()
            raise storage_error("fsync directory", exc) from exc
        self._files.append(new)
        self._bases.append(new.base_offset)
        return new

    # ------------------------------------------------------------------ durability

    def _policy_wants_sync(self, records: int, now: int) -> bool:
        cfg = self.config
        if (
            cfg.flush_messages is not None
            and self._unflushed_messages + records >= cfg.flush_messages
        ):
            return True
        return cfg.flush_ms is not None and now - self._last_flush_ms >= cfg.flush_ms

    def _mark_flushed(self, offset: int, now: int) -> None:
        if self._unsynced:
            offset = min(offset, self._unsynced[0][0].base_offset)
        if offset > self._flushed_offset:
            self._flushed_offset = offset
        if self._flushed_offset >= self._files[-1].next_offset:
            self._unflushed_messages = 0
        self._last_flush_ms = now
        if now - self._last_checkpoint_ms >= _CHECKPOINT_INTERVAL_MS:
            self._last_checkpoint_ms = now
            self._files[-1].write_indexes()
            save_recovery_point(self.directory, self._flushed_offset)

    def flush(self) -> None:
        """Make everything appended so far durable."""
        self.sync_to(self.log_end_offset)

    def sync_to(self, offset: int) -> bool:
        """Make offsets below `offset` durable; returns whether an fdatasync ran.

        The fdatasync runs without the append lock, so appends continue meanwhile and
        one call covers every append that came before it (group commit).
        """
        with self._sync_lock:
            with self._lock:
                self._check_open()
                if self._flushed_offset >= offset:
                    return False
                self._sync_rolled_files()
                active = self._files[-1]
                target = active.next_offset
            active.sync(self.backend)
            with self._lock:
                self._mark_flushed(target, _now_ms())
            return True

    @staticmethod
    def sync_many(
        requests: Sequence[tuple[PartitionLog, int]], backend: IoBackend
    ) -> list[LogError | None]:
        """sync_to for several logs at once, their fdatasyncs in one backend call (with
        io_uring, one submission). One result per request: None, or the error."""
        targets: dict[PartitionLog, int] = {}
        for log, offset in requests:
            targets[log] = max(offset, targets.get(log, offset))
        outcome: dict[PartitionLog, LogError | None] = dict.fromkeys(targets)
        held: list[PartitionLog] = []
        work: list[tuple[PartitionLog, int, int]] = []
        try:
            # Sync locks are taken in one global order, so two callers that each hold
            # several can never wait on each other.
            for log in sorted(targets, key=id):
                log._sync_lock.acquire()
                held.append(log)
                with log._lock:
                    if log._closed:
                        outcome[log] = LogClosedError(f"log {log.directory} is closed")
                    elif log._flushed_offset < targets[log]:
                        try:
                            log._sync_rolled_files()
                        except LogError as exc:
                            outcome[log] = exc
                            continue
                        active = log._files[-1]
                        work.append((log, active.fd, active.next_offset))
            errors = backend.sync_many([fd for _, fd, _ in work])
            now = _now_ms()
            for (log, _, target), error in zip(work, errors, strict=True):
                if error is None:
                    with log._lock:
                        log._mark_flushed(target, now)
                else:
                    outcome[log] = error
        finally:
            for log in held:
                log._sync_lock.release()
        return [outcome[log] for log, _ in requests]

    def flush_if_due(self, now_ms: int | None = None) -> bool:
        """Run the flush.ms policy when appends have stopped; the owner calls this
        periodically."""
        cfg = self.config
        if self._closed or cfg.flush_ms is None or self._flushed_offset >= self.log_end_offset:
            return False
        now = _now_ms() if now_ms is None else now_ms
        if now - self._last_flush_ms < cfg.flush_ms:
            return False
        return self.sync_to(self.log_end_offset)

    # ------------------------------------------------------------------ read

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> ReadResult:
        """Whole batches from the one containing `offset`, up to max_bytes but at least
        one; none that starts at or after `max_offset` (the high watermark)."""
        with self._lock:
            self._check_open()
            start = self._manifest.log_start_offset
            end = self.log_end_offset
            if offset < start or offset > end:
                raise OffsetOutOfRangeError(offset, start, end)
            if offset == end:
                return ReadResult(b"", offset, offset, start, end)
            index = bisect_right(self._bases, offset) - 1
            log_file = self._files[index]
            if offset >= log_file.next_offset and index + 1 < len(self._files):
                raise OffsetNotHeldError(offset, self._files[index + 1].base_offset)
            data, first, nxt = log_file.read(offset, max_bytes, max_offset)
            return ReadResult(data, first, nxt, start, end)

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record whose timestamp is >= `timestamp`, or
        None when there is none (Kafka's ListOffsets by time).

        The time index and the batches' max timestamps find the batch; only there are
        records looked at (time_search bounds the look), in at most _LOOKED_AT_BATCHES
        batches. The walk can be long (timestamps that go back and forth leave the index
        sparse), so it takes the lock one read at a time: callers run it off the event
        loop without holding appends up.
        """
        with self._lock:
            self._check_open()
            start = self._manifest.log_start_offset
            candidates = [
                (f, max(f.time_index.scan_start(timestamp), start, f.base_offset))
                for f in self._files
                if f.next_offset > start and f.max_timestamp >= timestamp
            ]
        looked_at = 0
        for log_file, scan_from in candidates:
            for raw in log_file.batches_reaching(scan_from, timestamp, start, self._lock):
                if looked_at == _LOOKED_AT_BATCHES:
                    # Batches whose headers promise a record their records lack: stop
                    # looking and answer this batch's start, which skips nothing.
                    header = parse_header(raw)
                    match = BatchMatch(
                        max(header.base_offset, start),
                        header.max_timestamp,
                        f"{looked_at} batches looked at held no such record",
                    )
                else:
                    looked_at += 1
                    found = first_record_at(raw, timestamp, start)
                    if found is None:
                        continue
                    match = found
                self._note_stand_in(match, timestamp)
                return match.offset, match.timestamp
        return None

    def _note_stand_in(self, match: BatchMatch, timestamp: int) -> None:
        if match.approximate is not None:
            logger.warning(
                "log %s: time lookup for %d answers offset %d, at or before the exact "
                "record: %s",
                self.directory,
                timestamp,
                match.offset,
                match.approximate,
            )

    # ------------------------------------------------------------------ Walrus segments

    def segments(self) -> list[SegmentInfo]:
        """The Walrus segments, oldest first; the active one with live figures."""
        with self._lock:
            out = [
                SegmentInfo(s.epoch, s.base_offset, s.end_offset, s.entries, s.size_bytes)
                for s in self._manifest.segments
            ]
            if out and not out[-1].sealed:
                live = out[-1]
                live.entries = self.log_end_offset - live.base_offset
                live.size_bytes = sum(
                    f.size for f in self._files if f.base_offset >= live.base_offset
                )
            return out

    def begin_segment(self, epoch: int, *, base_offset: int | None = None) -> SegmentInfo:
        """Start a Walrus segment of `epoch` in a new file, sealing the active one first
        if needed. It starts at the log end, or at `base_offset` when that is later: the
        offsets between belong to segments other nodes led, and stay a gap here."""
        with self._lock:
            self._check_open()
            last = self._manifest.segments[-1] if self._manifest.segments else None
            if last is not None and epoch <= last.epoch:
                raise FencedEpochError(f"epoch {epoch} is not above the latest epoch {last.epoch}")
            if base_offset is not None and base_offset < self.log_end_offset:
                raise InvalidAppendError(
                    f"segment of epoch {epoch} cannot begin at {base_offset}, "
                    f"below the log end {self.log_end_offset}"
                )
            if last is not None and not last.sealed:
                self._seal()
            return self._begin(epoch, base_offset)

    def _begin(self, epoch: int, base_offset: int | None = None) -> SegmentInfo:
        if base_offset is None or base_offset == self.log_end_offset:
            self._roll()
        else:
            self._start_after_gap(base_offset)
        segment = SegmentInfo(epoch=epoch, base_offset=self.log_end_offset)
        self._manifest.segments.append(segment)
        save_manifest(self.directory, self._manifest)
        self._refresh_append_epoch()
        return SegmentInfo(segment.epoch, segment.base_offset)

    def seal_segment(self) -> SegmentInfo:
        """Make the active segment immutable; its end offset, entries and size are
        recorded in the manifest, which survives restarts."""
        with self._lock:
            self._check_open()
            segment = self._manifest.segments[-1]
            if segment.sealed:
                raise LogError(f"segment of epoch {segment.epoch} is already sealed")
            return self._seal()

    def _seal(self) -> SegmentInfo:
        live = self.segments()[-1]
        self._sync_rolled_files()
        active = self._files[-1]
        active.sync(self.backend)
        active.write_indexes(sync=True, final=True)
        self._mark_flushed(active.next_offset, _now_ms())
        segment = self._manifest.segments[-1]
        segment.end_offset = self.log_end_offset
        self._append_epoch = None
        segment.entries = live.entries
        segment.size_bytes = live.size_bytes
        save_manifest(self.directory, self._manifest)
        return SegmentInfo(
            segment.epoch,
            segment.base_offset,
            segment.end_offset,
            segment.entries,
            segment.size_bytes,
        )

    def end_offset_for_epoch(self, epoch: int) -> EpochEndOffset:
        """OffsetForLeaderEpoch (see `epochs.end_offset_for_epoch` for Kafka's rules)."""
        with self._lock:
            return end_offset_for_epoch(self._manifest.segments, epoch, self.log_end_offset)

    def insert_sealed_segment(self, segment: SegmentInfo, source_dir: str) -> None:
        """Place a sealed Walrus segment copied from another replica into the gap this
        log has for its offsets (re-replication). `source_dir` holds its one log file,
        synced, with its indexes; they are moved in.

        The manifest is saved before the files move: a crash in between leaves the
        segment listed without data, which a restart drops or a repeated call completes
        (the source files stay until they are moved). An empty active segment in the way
        (a log opened before it had anything to write) gives way. Calling it again for a
        segment already in place is a no-op.
        """
        base, end = segment.base_offset, segment.end_offset
        if end is None or end <= base:
            raise InvalidAppendError(f"segment at {base} must be sealed and non-empty")
        with self._sync_lock, self._lock:
            self._check_open()
            segments = self._manifest.segments
            placeholder = segments[-1] if segments else None
            if placeholder is not None and not (
                not placeholder.sealed and placeholder.base_offset < end
                and self.log_end_offset == placeholder.base_offset
                and placeholder.epoch <= segment.epoch
            ):
                placeholder = None
            listed = next((s for s in segments if s.epoch == segment.epoch
                           and s.base_offset == base and s.end_offset == end), None)
            clash = [s for s in segments if s is not placeholder and s is not listed
                     and s.end_offset != s.base_offset and s.base_offset < end
                     and (s.end_offset is None or s.end_offset > base)]
            busy = [f for f in self._files if f.next_offset > f.base_offset
                    and f.base_offset < end and f.next_offset > base]
            if clash or (busy and listed is None):
                raise InvalidAppendError(
                    f"offsets [{base}, {end}) are not a gap in {self.directory}"
                )
            if any(f.base_offset == base and f.next_offset == end for f in busy):
                return
            if listed is None:
                listed = SegmentInfo(segment.epoch, base, end, segment.entries, segment.size_bytes)
                kept = [s for s in segments if s is not placeholder]
                kept.append(listed)
                kept.sort(key=lambda s: (s.base_offset, s.end_offset is None))
                self._manifest.segments = kept
                if all(f.size == 0 or f.base_offset > base for f in self._files):
                    # Nothing held below the copy: this replica's data now starts there.
                    self._manifest.log_start_offset = base
                save_manifest(self.directory, self._manifest)
            elif placeholder is not None:
                self._manifest.segments = [s for s in segments if s is not placeholder]
                save_manifest(self.directory, self._manifest)
            for empty in [f for f in self._files if f.size == 0 and base <= f.base_offset <= end]:
                self._files.remove(empty)
                empty.delete()
            if placeholder is not None:
                for empty in [f for f in self._files if f.size == 0
                              and f.base_offset == placeholder.base_offset]:
                    self._files.remove(empty)
                    empty.delete()
            name = file_name(base, LOG_SUFFIX)
            for entry in sorted(os.listdir(source_dir), key=lambda n: n == name):
                if entry.startswith(name[: -len(LOG_SUFFIX)]):
                    os.replace(os.path.join(source_dir, entry), os.path.join(self.directory, entry))
            fsync_directory(self.directory)
            moved = LogFile.open_existing(self.directory, base, self.config.index_interval_bytes)
            cut = moved.recover(end)
            if cut is not None or moved.next_offset != end:
                moved.close()
                raise InvalidAppendError(
                    f"copied file at {base} ends at {moved.next_offset}, expected {end}"
                )
            self._files.append(moved)
            self._files.sort(key=lambda f: f.base_offset)
            self._bases = [f.base_offset for f in self._files]
            if self._manifest.log_start_offset != base and self._files[0] is moved:
                self._manifest.log_start_offset = base
                save_manifest(self.directory, self._manifest)
            self._flushed_offset = max(self._flushed_offset, min(end, self.log_end_offset))
            self._refresh_append_epoch()

    # ------------------------------------------------------------------ deletion

    def truncate_to(self, offset: int) -> int:
        """Remove the batch containing `offset` and all after it (a follower's divergent
        tail); returns the new log end offset. Sealed segments cannot be cut."""
        with self._sync_lock, self._lock:
            self._check_open()
            if offset >= self.log_end_offset:
                return self.log_end_offset
            sealed_end = max(
                (s.end_offset or 0 for s in self._manifest.segments if s.sealed), default=0
            )
            if offset < sealed_end:
                raise InvalidTruncationError(
                    f"offset {offset} is inside a sealed segment ending at {sealed_end}"
                )
            if offset < self._manifest.log_start_offset:
                raise OffsetOutOfRangeError(offset, self.log_start_offset, self.log_end_offset)
            while len(self._files) > 1 and self._files[-1].base_offset >= offset:
                gone = self._files.pop()
                self._bases.pop()
                self._forget_unsynced(gone)
                gone.delete()
            # The file cut below may be a rolled one still syncing in the background; it
            # takes appends again, so nothing may be left to the background after this.
            self._sync_rolled_files()
            self._files[-1].truncate_to_offset(offset)
            leo = self.log_end_offset
            self._flushed_offset = min(self._flushed_offset, leo)
            if self._manifest.log_start_offset > leo:
                # The cut removed the whole batch that held the start offset.
                self._manifest.log_start_offset = leo
                save_manifest(self.directory, self._manifest)
            save_recovery_point(self.directory, min(load_recovery_point(self.directory), leo))
            self._files[-1].sync(self.backend)
            return leo

    def delete_records(self, offset: int) -> int:
        """Move the log start offset up to `offset` (DeleteRecords) and drop the files
        entirely below it; returns the new log start offset."""
        with self._sync_lock, self._lock:
            self._check_open()
            if offset > self.log_end_offset or offset < 0:
                raise OffsetOutOfRangeError(offset, self.log_start_offset, self.log_end_offset)
            if offset > self._manifest.log_start_offset:
                self._manifest.log_start_offset = offset
                self._delete_head_files(lambda f: f.next_offset <= offset)
                self._forget_old_segments()
                save_manifest(self.directory, self._manifest)
            return self._manifest.log_start_offset

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole sealed files from the head by retention.ms and retention.bytes;
        returns how many files went. The active file is never deleted."""
        now = _now_ms() if now_ms is None else now_ms
        cfg = self.config
        with self._sync_lock, self._lock:
            self._check_open()
            deleted = 0
            if cfg.retention_ms >= 0:
                deleted += self._delete_head_files(older_than(now, cfg.retention_ms))
            if cfg.retention_bytes >= 0:
                deleted += self._delete_head_files(
                    beyond_size(self.size_bytes, cfg.retention_bytes)
                )
            if deleted:
                first = self._files[0].base_offset
                if first > self._manifest.log_start_offset:
                    self._manifest.log_start_offset = first
                self._forget_old_segments()
                save_manifest(self.directory, self._manifest)
            return deleted

    def _delete_head_files(self, expired: FilePredicate) -> int:
        deleted = 0
        while len(self._files) > 1 and expired(self._files[0]):
            gone = self._files.pop(0)
            self._bases.pop(0)
            self._forget_unsynced(gone)
            gone.delete()
            deleted += 1
            logger.info("log %s: deleted %s", self.directory, os.path.basename(gone.path))
        if deleted:
            first = self._files[0].base_offset
            if first > self._manifest.log_start_offset:
                self._manifest.log_start_offset = first
        return deleted

    def _forget_old_segments(self) -> None:
        start = self._manifest.log_start_offset
        segments = self._manifest.segments
        while (
            len(segments) > 1
            and segments[0].end_offset is not None
            and segments[0].end_offset <= start
        ):
            segments.pop(0)

    def delete(self) -> None:
        """Close and remove this log's whole directory (topic deletion). Everything in it
        goes, not only the log's own files: a producer snapshot left behind would hand
        its sequences to a topic later created with the same name."""
        self.close()
        shutil.rmtree(self.directory, onerror=self._log_undeletable)

    def _log_undeletable(self, _func: Any, path: str, exc_info: Any) -> None:
        logger.warning("log %s: %s not removed: %s", self.directory, path, exc_info[1])
