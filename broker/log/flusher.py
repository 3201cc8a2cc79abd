"""Durable appends for an asyncio broker without blocking its event loop.

The append itself (a page-cache write) runs on the loop; the fdatasync that the flush
policy asks for runs on one flusher thread. Appends that arrive while a sync is under
way share the next one (group commit), so a burst of produce requests with
flush.messages=1 costs one fdatasync per burst, not one per request, and each request
is answered only after its own batches are on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass

from broker.log.partition_log import AppendResult, PartitionLog, ReadResult

logger = logging.getLogger("walrus.log")


@dataclass(slots=True)
class _SyncRequest:
    log: PartitionLog
    offset: int
    future: concurrent.futures.Future[None]


class Flusher:
    """One thread that runs fdatasync for waiting appends and the flush.ms policy."""

    def __init__(self, *, tick_seconds: float = 0.05) -> None:
        self._queue: queue.Queue[_SyncRequest | None] = queue.Queue()
        self._timed: set[PartitionLog] = set()
        self._timed_lock = threading.Lock()
        self._tick = tick_seconds
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="walrus-log-flusher", daemon=True)
        self._thread.start()

    def request(self, log: PartitionLog, offset: int) -> concurrent.futures.Future[None]:
        """A future that completes once every offset below `offset` is on disk."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._stopped:
            future.set_exception(RuntimeError("flusher stopped"))
        else:
            self._queue.put(_SyncRequest(log, offset, future))
        return future

    def watch(self, log: PartitionLog) -> None:
        """Apply this log's flush.ms even when no append comes to trigger it (checked on
        every tick, so a later change of the setting takes effect too)."""
        with self._timed_lock:
            self._timed.add(log)

    def unwatch(self, log: PartitionLog) -> None:
        with self._timed_lock:
            self._timed.discard(log)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._tick)
            except queue.Empty:
                self._flush_timed()
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in batch)
            self._serve([item for item in batch if item is not None])
            self._flush_timed()
            if stop:
                return

    def _serve(self, requests: list[_SyncRequest]) -> None:
        by_log: dict[PartitionLog, list[_SyncRequest]] = {}
        for request in requests:
            by_log.setdefault(request.log, []).append(request)
        # Logs sharing a backend get their fdatasyncs in one call (one io_uring
        # submission); each waiting append learns its own log's outcome.
        by_backend: dict[int, list[PartitionLog]] = {}
        for log in by_log:
            by_backend.setdefault(id(log.backend), []).append(log)
        for logs in by_backend.values():
            targets = [(log, max(r.offset for r in by_log[log])) for log in logs]
            try:
                outcomes: list[Exception | None] = list(
                    PartitionLog.sync_many(targets, logs[0].backend)
                )
            except Exception as exc:
                outcomes = [exc] * len(logs)
            for log, outcome in zip(logs, outcomes, strict=True):
                for request in by_log[log]:
                    if outcome is None:
                        request.future.set_result(None)
                    else:
                        request.future.set_exception(outcome)

    def _flush_timed(self) -> None:
        with self._timed_lock:
            logs = list(self._timed)
        now = time.time_ns() // 1_000_000
        for log in logs:
            try:
                log.flush_if_due(now)
            except Exception as exc:  # a closed or failing log must not stop the thread
                logger.warning("timed flush of %s failed: %s", log.directory, exc)


class AsyncLog:
    """A PartitionLog for coroutines: append() is awaited until its flush policy is met."""

    def __init__(self, log: PartitionLog, flusher: Flusher) -> None:
        self.log = log
        self._flusher = flusher
        flusher.watch(log)

    async def append(
        self,
        batches: bytes | bytearray | memoryview,
        *,
        epoch: int | None = None,
        log_append_time: int | None = None,
    ) -> AppendResult:
        result = self.log.append(
            batches, epoch=epoch, log_append_time=log_append_time, defer_sync=True
        )
        if result.needs_sync:
            await asyncio.wrap_future(self._flusher.request(self.log, result.log_end_offset))
            result.durable = True
            result.needs_sync = False
        return result

    async def flush(self) -> None:
        await asyncio.wrap_future(self._flusher.request(self.log, self.log.log_end_offset))

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> ReadResult:
        return self.log.read(offset, max_bytes, max_offset=max_offset)

    def close(self) -> None:
        self._flusher.unwatch(self.log)
        self.log.close()
