"""Disk writers behind one interface: io_uring (liburing) and POSIX pwritev/fdatasync.

Every write names its file offset, so a failed write never moves a file pointer and
the log's own idea of the file's end stays the only truth.
"""

from __future__ import annotations

import errno as errno_codes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from broker.log.errors import LogStorageError
from broker.log.uring_probe import probe_io_uring
from broker.log.uring_ring import Ring

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


# Completion tags of a linked durable write (the binding refuses 0 as a tag).
_WRITE_TAG = 1
_FSYNC_TAG = 2


# Durable writes below this size skip the ring (see UringBackend.write).
SMALL_DURABLE_WRITE = 256 * 1024


class UringBackend:
    """io_uring through liburing: a durable write is one vectored write linked to its
    fdatasync, in one submission, with one system call to wait for both.

    One ring is shared by every caller of this object; a lock serialises submissions
    because a ring is not thread-safe. Built only after the probe
    (`broker.log.uring_probe`) saw the binding work in a child process.
    """

    name = "io_uring"
    QUEUE_DEPTH = 64

    def __init__(self) -> None:
        probe = probe_io_uring()
        if not probe.ok:
            raise LogStorageError(f"io backend io_uring is unavailable: {probe.reason}",
                                  errno=probe.errno)
        try:
            self._ring = Ring(self.QUEUE_DEPTH)
        except OSError as exc:
            raise storage_error("io_uring setup", exc) from exc
        except Exception as exc:
            # The probe's child got this far with the same binding, so this is not
            # expected; but POSIX can still serve, and a broker that stops here cannot.
            raise LogStorageError(f"io_uring setup failed: {type(exc).__name__}: {exc}") from exc
        self._lock = threading.Lock()

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
        if total < SMALL_DURABLE_WRITE or self._ring.broken:
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
        if len(fds) < 2 or self._ring.broken:
            return _sync_each(fds)
        results: list[LogStorageError | None] = [None] * len(fds)
        room = self.QUEUE_DEPTH
        with self._lock:
            for start in range(0, len(fds), room):
                group = fds[start : start + room]

                def prepare(ring: Ring, group: Sequence[int] = group) -> None:
                    for index, fd in enumerate(group):
                        ring.prep_fdatasync(fd, tag=index + 1)

                for tag, res in self._submit(len(group), prepare):
                    if res < 0:
                        results[start + tag - 1] = _completion_error("fdatasync", -res)
        return results

    def _submit(
        self, count: int, prepare: Callable[[Ring], object]
    ) -> list[tuple[int, int]]:
        """Prepare `count` entries with `prepare` and run them; a failure of the ring
        itself (not of an entry) is a storage error, and leaves the ring out of use."""
        ring = self._ring
        try:
            ring.reserve(count)
            prepare(ring)
            return ring.submit_and_wait(count)
        except OSError as exc:
            if ring.broken:
                logger.warning("io_uring ring failed (%s); this backend writes with POSIX "
                               "calls from now on", exc)
            raise storage_error("io_uring submit", exc) from exc

    def _write_linked(self, fd: int, pieces: list[WriteChunk], offset: int, total: int) -> None:
        """One vectored write linked to an fdatasync: one submission, one wait. The
        pieces are referenced, not copied; the ring keeps them until both complete."""

        def prepare(ring: Ring) -> None:
            ring.prep_writev(fd, pieces, offset, tag=_WRITE_TAG, link=True)
            ring.prep_fdatasync(fd, tag=_FSYNC_TAG)

        results = dict(self._submit(2, prepare))
        written, synced = results.get(_WRITE_TAG, -errno_codes.EIO), results.get(_FSYNC_TAG, 0)
        if written == total:
            if synced < 0:
                raise _completion_error("io_uring fdatasync", -synced)
            return
        # A short or failed write cancelled the fdatasync. Finish with plain syscalls,
        # which either complete the write or raise the disk's real error.
        written = max(written, 0)
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
            self._ring.close()


def _completion_error(action: str, code: int) -> LogStorageError:
    return storage_error(action, OSError(code, os.strerror(code)))


_announced = False


def open_backend(name: str) -> IoBackend:
    """Return the backend named by config. "auto" takes io_uring when the probe says it
    works and POSIX otherwise, saying which and why in one log line per process; an
    explicit "io_uring" that cannot work is a LogStorageError with the reason."""
    if name == "posix":
        return PosixBackend()
    probe = probe_io_uring()
    try:
        backend = UringBackend()
    except LogStorageError as exc:
        if name == "io_uring":
            raise
        # A probe that passed followed by a ring that failed here is not expected.
        expected = probe.expected and not probe.ok
        _announce(expected, f"log io backend: posix ({probe.reason or exc})")
        return PosixBackend()
    if name == "auto":
        _announce(True, f"log io backend: io_uring (auto; probe took {probe.elapsed_ms:.0f} ms)")
    return backend


def _announce(expected: bool, message: str) -> None:
    # Every PartitionLog opened without a shared backend asks for one; the choice is the
    # same each time, so it is told once at INFO (WARNING for a broken binding).
    global _announced
    if _announced:
        logger.debug("%s", message)
        return
    _announced = True
    logger.log(logging.INFO if expected else logging.WARNING, "%s", message)
