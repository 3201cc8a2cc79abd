"""Background fdatasync of files that stopped taking appends.

When a log rolls to a new file, the old one may hold up to a segment's worth of
page-cache data (a gigabyte with the defaults and no flush policy). Syncing it on the
append path stalls that append for the whole writeback, so, as Kafka does on a roll,
the sync runs in the background and the log's recovery point moves past the file only
once it is done. Any sync the flush policy asks for on the append path first syncs the
rolled files still waiting (`PartitionLog` keeps them in order), so a durable append
never stands on unsynced bytes below it.

One thread serves every log of the process: fdatasync releases the GIL, and the files
are synced in the order they were rolled.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("walrus.log")


@dataclass(slots=True)
class RolledFile:
    """A file waiting for its sync: a duplicate of its descriptor (so a concurrent
    delete or close cannot pull it away mid-sync), the paths of its indexes, and what
    to tell its log afterwards."""

    fd: int
    index_paths: tuple[str, ...]
    done: Callable[[RolledFile, OSError | None], None]


class RolledFileSyncer:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[RolledFile] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, rolled: RolledFile) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="walrus-rolled-sync", daemon=True
                    )
                    self._thread.start()
        self._queue.put(rolled)

    def _run(self) -> None:
        while True:
            rolled = self._queue.get()
            error: OSError | None = None
            try:
                os.fdatasync(rolled.fd)
                for path in rolled.index_paths:
                    _sync_path(path)
            except OSError as exc:
                error = exc
            finally:
                os.close(rolled.fd)
            try:
                rolled.done(rolled, error)
            except Exception:
                logger.exception("after syncing a rolled log file")


def _sync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        # Deleted meanwhile (retention, truncation): nothing left to make durable.
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


SYNCER = RolledFileSyncer()
