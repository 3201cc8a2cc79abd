"""Disk writers behind one interface: io_uring (liburing) and POSIX pwritev/fdatasync.

Every write names its file offset, so a failed write never moves a file pointer and
the log's own idea of the file's end stays the only truth.
"""

from __future__ import annotations

import errno as errno_codes
import logging
import os
import threading
from collections.abc import Sequence
from typing import Protocol

from broker.log.errors import LogStorageError

logger = logging.getLogger("walrus.log")

WriteChunk = bytes | bytearray | memoryview
# Linux refuses a vectored write of more pieces than this (IOV_MAX).
_IOV_MAX = 1024


class IoBackend(Protocol):
    """Writes whole chunks at an offset; `sync` makes them durable before returning."""

    name: str

    def write(
        self, fd: int, chunks: Sequence[WriteChunk], offset: int, sync: bool, size: int = -1
    ) -> None:
        """Write `chunks` back to back from `offset` (`size` = their total length, when
        the caller knows it); with `sync`, they are durable before this returns."""
        ...

    def sync(self, fd: int) -> None: ...

    def sync_many(self, fds: Sequence[int]) -> list[LogStorageError | None]:
        """fdatasync every file; one result per fd (None = durable)."""
        ...

    def close(self) -> None: ...


def storage_error(action: str, exc: OSError) -> LogStorageError:
    code = exc.errno
    name = errno_codes.errorcode.get(code, str(code)) if code is not None else "unknown"
    return LogStorageError(f"{action} failed: {name} ({exc.strerror})", errno=code)


def _pwrite_all(fd: int, chunks: Sequence[WriteChunk], offset: int, size: int = -1) -> None:
    total = size if size >= 0 else sum(map(len, chunks))
    written = os.pwritev(fd, chunks, offset) if len(chunks) <= _IOV_MAX else 0
    if written == total:
        return
    # Rare: more pieces than IOV_MAX, or a short write (signal, quota, full disk);
    # resume after the bytes that landed, which either completes or raises the error.
    pending: list[memoryview] = [memoryview(c) for c in chunks if len(c)]
    while written:
        if written >= len(pending[0]):
            written -= len(pending.pop(0))
        else:
            pending[0] = pending[0][written:]
            written = 0
    offset += total - sum(map(len, pending))
    while pending:
        written = os.pwritev(fd, pending[:_IOV_MAX], offset)
        offset += written
        while pending and written >= len(pending[0]):
            written -= len(pending[0])
            pending.pop(0)
        if pending and written:
            pending[0] = pending[0][written:]


def _sync_each(fds: Sequence[int]) -> list[LogStorageError | None]:
    results: list[LogStorageError | None] = []
    for fd in fds:
        try:
            os.fdatasync(fd)
            results.append(None)
        except OSError as exc:
            results.append(storage_error("fdatasync", exc))
    return results


class PosixBackend:
    """os.pwritev + os.fdatasync: the portable path, as fast as io_uring without sync."""

    name = "posix"

    def write(
        self, fd: int, chunks: Sequence[WriteChunk], offset: int, sync: bool, size: int = -1
    ) -> None:
        try:
            _pwrite_all(fd, chunks, offset, size)
            if sync:
                os.fdatasync(fd)
        except OSError as exc:
            raise storage_error("write", exc) from exc

    def sync(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise storage_error("fdatasync", exc) from exc

    def sync_many(self, fds: Sequence[int]) -> list[LogStorageError | None]:
        return _sync_each(fds)

    def close(self) -> None:
        return None


_FSYNC_TAG = 1 << 62


class UringBackend:
    """io_uring through liburing: the writes of one call and their fdatasync go in one
    submission, linked so the sync runs after the writes, with one syscall to wait.

    One ring is shared by every caller of this object; a lock serialises submissions
    because a ring is not thread-safe.
    """

    name = "io_uring"
    QUEUE_DEPTH = 64

    def __init__(self) -> None:
        import liburing

        self._lib = liburing
        self._ring = liburing.Ring()
        self._cqe = liburing.Cqe()
        liburing.io_uring_queue_init(self.QUEUE_DEPTH, self._ring)
        self._lock = threading.Lock()
        self._closed = False

    def write(
        self, fd: int, chunks: Sequence[WriteChunk], offset: int, sync: bool, size: int = -1
    ) -> None:
        if not sync:
            # Measured: without a sync, a ring round trip from Python costs more than
            # the pwritev it replaces, so page-cache writes take the direct path.
            try:
                _pwrite_all(fd, chunks, offset, size)
            except OSError as exc:
                raise storage_error("write", exc) from exc
            return
        # The ring takes bytes or bytearray only: the pieces of one append are joined
        # into one buffer (a copy that the fdatasync after it dwarfs).
        if len(chunks) == 1 and isinstance(chunks[0], bytes | bytearray):
            joined = chunks[0]
        else:
            joined = b"".join(chunks)
        with self._lock:
            self._submit(fd, [joined], offset, sync=True)

    def sync(self, fd: int) -> None:
        # A lone fdatasync gains nothing from the ring, and holding the ring's lock for
        # its duration would stall the writes of every other log sharing it.
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise storage_error("fdatasync", exc) from exc

    def sync_many(self, fds: Sequence[int]) -> list[LogStorageError | None]:
        """All the fdatasyncs in one submission: the kernel runs them in parallel and
        one system call waits for all (group commit across partitions)."""
        if len(fds) < 2:
            return _sync_each(fds)
        lib = self._lib
        results: list[LogStorageError | None] = [None] * len(fds)
        room = self.QUEUE_DEPTH
        with self._lock:
            for start in range(0, len(fds), room):
                group = fds[start : start + room]
                for index, fd in enumerate(group):
                    sqe = lib.io_uring_get_sqe(self._ring)
                    lib.io_uring_prep_fsync(sqe, fd, lib.IORING_FSYNC_DATASYNC)
                    sqe.user_data = start + index
                try:
                    lib.io_uring_submit_and_wait(self._ring, len(group))
                except OSError as exc:
                    raise storage_error("io_uring submit", exc) from exc
                seen = 0
                while seen < len(group):
                    lib.io_uring_wait_cqe(self._ring, self._cqe)
                    ready = lib.io_uring_cq_ready(self._ring)
                    for i in range(ready):
                        cqe = self._cqe[i]
                        tag = cqe.user_data
                        try:
                            cqe.res  # noqa: B018 - reading it raises the completion's error
                        except OSError as exc:
                            results[tag] = storage_error("fdatasync", exc)
                    lib.io_uring_cq_advance(self._ring, ready)
                    seen += ready
        return results

    def _submit(
        self, fd: int, chunks: Sequence[bytes | bytearray], offset: int, *, sync: bool
    ) -> int:
        lib = self._lib
        ring = self._ring
        positions: list[int] = []
        for index, chunk in enumerate(chunks):
            sqe = lib.io_uring_get_sqe(ring)
            # liburing accepts bytes and bytearray here (not memoryview).
            lib.io_uring_prep_write(sqe, fd, chunk, offset)
            sqe.user_data = index
            if sync or index + 1 < len(chunks):
                lib.io_uring_sqe_set_flags(sqe, lib.IOSQE_IO_LINK)
            positions.append(offset)
            offset += len(chunk)
        if sync:
            sqe = lib.io_uring_get_sqe(ring)
            lib.io_uring_prep_fsync(sqe, fd, lib.IORING_FSYNC_DATASYNC)
            sqe.user_data = _FSYNC_TAG
        expected = len(chunks) + (1 if sync else 0)
        if expected == 0:
            return offset
        written = [0] * len(chunks)
        failures: dict[int, int] = {}
        try:
            lib.io_uring_submit_and_wait(ring, expected)
        except OSError as exc:
            raise storage_error("io_uring submit", exc) from exc
        seen = 0
        while seen < expected:
            lib.io_uring_wait_cqe(ring, self._cqe)
            ready = lib.io_uring_cq_ready(ring)
            for i in range(ready):
                cqe = self._cqe[i]
                tag = cqe.user_data
                try:
                    result = cqe.res or 0
                except OSError as exc:
                    failures[tag] = exc.errno or errno_codes.EIO
                    continue
                if tag != _FSYNC_TAG:
                    written[tag] = result
            lib.io_uring_cq_advance(ring, ready)
            seen += ready
        incomplete = [i for i, chunk in enumerate(chunks) if written[i] != len(chunk)]
        real_errors = {t: e for t, e in failures.items() if e != errno_codes.ECANCELED}
        if not incomplete and not failures:
            return offset
        if real_errors and not incomplete:
            # Only the fdatasync failed: the data is in the page cache but not durable.
            code = real_errors.get(_FSYNC_TAG, next(iter(real_errors.values())))
            raise LogStorageError(
                f"io_uring fdatasync failed: {errno_codes.errorcode.get(code, code)}", errno=code
            )
        # A short or failed write cancelled the rest of the chain. Finish it with plain
        # syscalls, which either complete it or raise the disk's real error.
        rest: list[WriteChunk] = []
        first = incomplete[0]
        done = max(written[first], 0)
        rest.append(memoryview(chunks[first])[done:])
        rest.extend(chunks[first + 1 :])
        try:
            _pwrite_all(fd, rest, positions[first] + done)
            if sync:
                os.fdatasync(fd)
        except OSError as exc:
            raise storage_error("write", exc) from exc
        return offset

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._lib.io_uring_queue_exit(self._ring)


def open_backend(name: str) -> IoBackend:
    """Return the backend named by config; "auto" tries io_uring first and logs the pick."""
    if name == "posix":
        return PosixBackend()
    try:
        backend = UringBackend()
    except (ImportError, OSError) as exc:
        if name == "io_uring":
            raise LogStorageError(f"io_uring is unavailable: {exc}") from exc
        logger.info("log io backend: posix (io_uring did not initialise: %s)", exc)
        return PosixBackend()
    if name == "auto":
        logger.info("log io backend: io_uring (auto)")
    return backend
