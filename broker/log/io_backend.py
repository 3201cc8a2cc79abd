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


# Durable writes below this size skip the ring (see UringBackend.write).
SMALL_DURABLE_WRITE = 256 * 1024


class UringBackend:
    """io_uring through liburing: a durable write is one vectored write linked to its
    fdatasync, in one submission, with one system call to wait for both.

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
        pieces = [c for c in chunks if len(c)]
        total = size if size >= 0 else sum(map(len, pieces))
        if total < SMALL_DURABLE_WRITE:
            # Measured (bench/log_bench.py, 16 KiB batches, flush.messages=1): for small
            # writes the kernel's worker-thread fdatasync behind a linked ring entry costs
            # more than the system call it saves; pwritev + fdatasync is faster.
            try:
                _pwrite_all(fd, pieces, offset, total)
                os.fdatasync(fd)
            except OSError as exc:
                raise storage_error("durable write", exc) from exc
            return
        if len(pieces) > _IOV_MAX:
            pieces = [b"".join(pieces)]
        with self._lock:
            self._write_linked(fd, pieces, offset, total)

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

    def _write_linked(self, fd: int, pieces: list[WriteChunk], offset: int, total: int) -> None:
        """One vectored write linked to an fdatasync: one submission, one wait. The
        pieces are referenced, not copied; they stay alive until both complete because
        this call waits for them."""
        lib = self._lib
        ring = self._ring
        iovec = lib.Iovec(pieces)
        sqe = lib.io_uring_get_sqe(ring)
        lib.io_uring_prep_writev(sqe, fd, iovec, offset)
        lib.io_uring_sqe_set_flags(sqe, lib.IOSQE_IO_LINK)
        sqe.user_data = 0
        sqe = lib.io_uring_get_sqe(ring)
        lib.io_uring_prep_fsync(sqe, fd, lib.IORING_FSYNC_DATASYNC)
        sqe.user_data = _FSYNC_TAG
        try:
            lib.io_uring_submit_and_wait(ring, 2)
        except OSError as exc:
            raise storage_error("io_uring submit", exc) from exc
        written = 0
        failures: dict[int, int] = {}
        seen = 0
        while seen < 2:
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
                    written = result
            lib.io_uring_cq_advance(ring, ready)
            seen += ready
        del iovec
        if written == total and not failures:
            return
        if written == total:
            code = failures[_FSYNC_TAG]
            name = errno_codes.errorcode.get(code, str(code))
            raise LogStorageError(f"io_uring fdatasync failed: {name}", errno=code)
        # A short or failed write cancelled the fdatasync. Finish with plain syscalls,
        # which either complete the write or raise the disk's real error.
        rest: list[memoryview] = []
        skip = written
        for piece in pieces:
            view = memoryview(piece)
            if skip >= len(view):
                skip -= len(view)
                continue
            rest.append(view[skip:])
            skip = 0
        try:
            _pwrite_all(fd, rest, offset + written)
            os.fdatasync(fd)
        except OSError as exc:
            raise storage_error("write", exc) from exc

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
