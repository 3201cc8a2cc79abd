"""Copies sealed segments this node was chosen to hold (re-replication after a removal).

The metadata lists this node in a sealed segment's ``copying`` (resync_plan.py). The
copy is fetched from a live holder over the interbroker channel, offset range by offset
range, CRC-checked and written with the holder's offsets into a staging log under
``<data dir>/segment-copies/``, one directory per segment. Once it reaches the
segment's end offset it is sealed, checked (end offset, entry count) and moved into the
gap the partition's log has for it; only then does this node report SegmentCopied and
start to count as a replica. A restart resumes a staging log from its end; one that is
no longer assigned is discarded, never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import struct
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from broker.background import wait_or_timeout
from broker.coordination.applied_view import MetadataDelta
from broker.coordination.commands import PlanCopies, SegmentCopied
from broker.coordination.errors import Refusal
from broker.coordination.raft_errors import RaftError
from broker.coordination.resync_plan import needs_planning
from broker.interbroker.client import PeerUnavailable
from broker.interbroker.peer_api import FetchPart
from broker.log.errors import LogError
from broker.log.manager import partition_dir_name
from broker.log.partition_log import PartitionLog
from broker.node_services import NodeServices
from broker.protocol.errors import ErrorCode
from broker.protocol.records import RecordError, iter_batches

if TYPE_CHECKING:
    from broker.log.manifest import SegmentInfo

log = logging.getLogger("walrus.resync")

COPY_DIR = "segment-copies"
MAX_CONCURRENT_COPIES = 2
REFRESH_S = 1.0
PLAN_INTERVAL_S = 3.0
FETCH_BYTES = 4 << 20
# A holder answers from its own files without waiting (max_wait_ms 0): one that takes
# longer is hung, and another holder is tried.
FETCH_TIMEOUT_S = 5.0
_STAGING_SEGMENT_BYTES = (1 << 31) - 1  # the whole copy in one file
_TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class CopyJob:
    topic: str
    partition: int
    epoch: int
    base_offset: int
    end_offset: int

    @property
    def staging_name(self) -> str:
        return f"{partition_dir_name(self.topic, self.partition)}.e{self.epoch}"


@dataclass(slots=True)
class CopyProgress:
    job: CopyJob
    copied_to: int
    bytes_copied: int = 0
    source: int = -1

    def to_dict(self) -> dict[str, Any]:
        j = self.job
        return {"topic": j.topic, "partition": j.partition, "epoch": j.epoch,
                "base_offset": j.base_offset, "end_offset": j.end_offset,
                "copied_to": self.copied_to, "bytes": self.bytes_copied, "source": self.source}


def complete_batches_below(data: bytes | memoryview, end_offset: int) -> memoryview:
    """The leading whole batches of a fetch answer that lie below `end_offset`, CRCs
    checked (a holder may send part of the next segment, or a batch cut short)."""
    view = memoryview(data)
    upto = 0
    for position, header in iter_batches(view, validate=True, allow_partial_tail=True):
        if header.base_offset >= end_offset:
            break
        if header.last_offset >= end_offset:
            raise RecordError(f"batch at {header.base_offset} crosses the segment end {end_offset}")
        upto = position + header.size
    return view[:upto]


class SegmentCopier:
    def __init__(self, node: NodeServices) -> None:
        self._node = node
        self._root = node.config.data_dir / COPY_DIR
        self._tasks: dict[CopyJob, asyncio.Task[None]] = {}
        self._progress: dict[CopyJob, CopyProgress] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_COPIES)
        self._task: asyncio.Task[None] | None = None
        self._last_plan = 0.0
        # Copies whose SegmentCopied is being proposed: its apply ends the assignment,
        # which must not cancel the report that follows it.
        self._reporting: set[CopyJob] = set()
        # Set by an applied entry that moved the topology: copies assigned or taken away.
        self._moved = asyncio.Event()

    def start(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        self._node.view.subscribe(self._on_delta)
        self._task = asyncio.create_task(self._supervise(), name="segment-copier")

    def _on_delta(self, delta: MetadataDelta) -> None:
        if delta.topology_moved:
            self._moved.set()

    async def stop(self) -> None:
        self._node.view.unsubscribe(self._on_delta)
        tasks = [t for t in (self._task, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def progress(self) -> list[dict[str, Any]]:
        """Copies this node is making, for `cluster status`."""
        return [p.to_dict() for p in self._progress.values()]

    # ------------------------------------------------------------------ supervision

    def _assigned(self) -> set[CopyJob]:
        me = self._node.node_id
        jobs = set()
        with self._node.metadata() as state:
            for topic in state.topics.values():
                for p in topic.partitions:
                    for seg in p.segments:
                        if seg.end_offset is not None and me in seg.copying:
                            jobs.add(CopyJob(topic.name, p.index, seg.epoch,
                                             seg.base_offset, seg.end_offset))
        return jobs

    async def _supervise(self) -> None:
        while True:
            try:
                jobs = self._assigned()
                for job in list(self._tasks):
                    task = self._tasks[job]
                    if job in jobs and not task.done():
                        continue
                    if not task.done():
                        if job in self._reporting:
                            # Its own report took it off the list: let the report end.
                            continue
                        log.info("%s-%d: copy of epoch %d no longer assigned here",
                                 job.topic, job.partition, job.epoch)
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    del self._tasks[job]
                    self._progress.pop(job, None)
                for job in jobs - set(self._tasks):
                    self._tasks[job] = asyncio.create_task(
                        self._copy(job), name=f"copy-{job.staging_name}")
                self._discard_unassigned(jobs)
                await self._plan_if_needed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("segment copier supervision failed")
            # Assignments come with topology moves; planning depends on liveness too,
            # which moves with time alone.
            await wait_or_timeout(self._moved, REFRESH_S)
            self._moved.clear()

    def _discard_unassigned(self, jobs: set[CopyJob]) -> None:
        wanted = {j.staging_name for j in jobs}
        for name in os.listdir(self._root):
            if name not in wanted:
                log.info("discarding the unfinished copy %s", name)
                shutil.rmtree(self._root / name, ignore_errors=True)

    async def _plan_if_needed(self) -> None:
        """The lowest live node asks for copy targets when a segment lacks them (a
        segment sealed after its leader was removed, a target that died)."""
        now = time.monotonic()
        if now - self._last_plan < PLAN_INTERVAL_S:
            return
        node = self._node
        wall = time.time_ns() // 1_000_000
        with node.metadata() as state:
            live = state.live_broker_ids(wall)
            wanted = bool(live) and live[0] == node.node_id and needs_planning(
                state.topics, state.counted_holders(wall), live)
        if wanted:
            self._last_plan = now
            try:
                await node.propose(PlanCopies())
            except RaftError as exc:
                log.info("cannot plan segment copies now: %s", exc)

    # ------------------------------------------------------------------ one copy

    async def _copy(self, job: CopyJob) -> None:
        async with self._slots:
            try:
                await self._copy_now(job)
            except asyncio.CancelledError:
                raise
            except (RaftError, LogError) as exc:
                log.warning("%s-%d: copy of epoch %d stopped (%s); it will be retried",
                            job.topic, job.partition, job.epoch, exc)
                await asyncio.sleep(REFRESH_S)
            except Exception:
                log.exception("%s-%d: copy of epoch %d failed; it will be retried",
                              job.topic, job.partition, job.epoch)
                await asyncio.sleep(REFRESH_S)

    async def _copy_now(self, job: CopyJob) -> None:
        node = self._node
        assert node.replicas is not None
        started = time.monotonic()
        directory = str(self._root / job.staging_name)
        held = node.replicas.get(job.topic, job.partition)
        if (not os.path.isdir(directory) and held is not None
                and held.holds_sealed(job.epoch, job.base_offset, job.end_offset)):
            # Moved in before a restart that came ahead of the report: report it now.
            await self._report(job, None, started)
            return
        staging = await asyncio.to_thread(self._open_staging, directory, job)
        progress = self._progress.setdefault(job, CopyProgress(job, staging.log_end_offset))
        try:
            segment = await self._fill(staging, job, progress)
        finally:
            staging.close()
        replica = node.replicas.get_or_open(job.topic, job.partition)
        await asyncio.to_thread(replica.log.log.insert_sealed_segment, segment, directory)
        # Reads stop at the high watermark; a copy that became the log's end moves it.
        replica.set_follower_high_watermark(job.end_offset)
        shutil.rmtree(directory, ignore_errors=True)
        await self._report(job, progress, started, segment.size_bytes)

    async def _report(self, job: CopyJob, progress: CopyProgress | None, started: float,
                      size: int = 0) -> None:
        node = self._node
        self._reporting.add(job)
        try:
            result = await node.propose(SegmentCopied(job.topic, job.partition, job.epoch,
                                                      node.node_id, job.end_offset))
        finally:
            self._reporting.discard(job)
        self._progress.pop(job, None)
        if isinstance(result, Refusal):
            log.warning("%s-%d: copy of epoch %d not recorded: %s",
                        job.topic, job.partition, job.epoch, result)
            return
        log.info("%s-%d: copied sealed segment of epoch %d [%d, %d), %d bytes, from node %d "
                 "in %.1f s; this node now holds it", job.topic, job.partition, job.epoch,
                 job.base_offset, job.end_offset, size,
                 -1 if progress is None else progress.source, time.monotonic() - started)

    def _open_staging(self, directory: str, job: CopyJob) -> PartitionLog:
        """The staging log of `job`, resumed when a usable one is on disk."""
        node = self._node
        assert node.replicas is not None
        config = replace(node.log_config(job.topic), segment_bytes=_STAGING_SEGMENT_BYTES,
                         segment_ms=_TEN_YEARS_MS, flush_messages=None, flush_ms=None)
        backend = node.replicas.logs.backend
        if os.path.isdir(directory):
            try:
                staging = PartitionLog.open(directory, config, epoch=-1, backend=backend)
                if self._ours(staging, job) is not None:
                    log.info("%s-%d: resuming the copy of epoch %d at offset %d", job.topic,
                             job.partition, job.epoch, staging.log_end_offset)
                    return staging
                staging.close()
            except LogError as exc:
                log.warning("%s: unusable staging copy (%s); starting again", directory, exc)
            shutil.rmtree(directory, ignore_errors=True)
        staging = PartitionLog.open(directory, config, epoch=-1, backend=backend)
        staging.begin_segment(job.epoch, base_offset=job.base_offset)
        return staging

    @staticmethod
    def _ours(staging: PartitionLog, job: CopyJob) -> SegmentInfo | None:
        return next((s for s in staging.segments() if s.epoch == job.epoch
                     and s.base_offset == job.base_offset
                     and s.end_offset in (None, job.end_offset)), None)

    async def _fill(self, staging: PartitionLog, job: CopyJob, progress: CopyProgress) -> SegmentInfo:
        ours = self._ours(staging, job)
        tried: list[int] = []
        while ours is not None and not ours.sealed and staging.log_end_offset < job.end_offset:
            source = self._pick_source(job, tried)
            if source is None:
                tried.clear()
                await asyncio.sleep(REFRESH_S)
                continue
            progress.source = source
            data = await self._fetch(source, job, staging.log_end_offset)
            if not data:
                tried.append(source)
                await asyncio.sleep(0.2)
                continue
            await asyncio.to_thread(staging.append, data, epoch=job.epoch, replicated=True)
            progress.copied_to = staging.log_end_offset
            progress.bytes_copied += len(data)
            ours = self._ours(staging, job)
        if ours is None:
            raise LogError(f"staging copy of epoch {job.epoch} lost its segment")
        if not ours.sealed:
            ours = await asyncio.to_thread(staging.seal_segment)
        if (ours.end_offset != job.end_offset
                or ours.entries != job.end_offset - job.base_offset):
            raise LogError(f"copy of epoch {job.epoch} holds [{ours.base_offset}, "
                           f"{ours.end_offset}) with {ours.entries} entries, expected "
                           f"[{job.base_offset}, {job.end_offset})")
        return ours

    def _pick_source(self, job: CopyJob, tried: list[int]) -> int | None:
        node = self._node
        now = time.time_ns() // 1_000_000
        with node.metadata() as state:
            part = state.partition(job.topic, job.partition)
            seg = None if part is None else next(
                (s for s in part.segments if s.epoch == job.epoch), None)
            if seg is None:
                return None
            live = [n for n in seg.in_sync
                    if n != node.node_id and state.broker_alive(n, now)]
        fresh = [n for n in live if n not in tried]
        return fresh[0] if fresh else None

    async def _fetch(self, source: int, job: CopyJob, offset: int) -> memoryview | None:
        node = self._node
        wanted = FetchPart(job.topic, job.partition, offset, FETCH_BYTES)
        try:
            p = await node.peer_api.fetch_for_copy(source, wanted, timeout=FETCH_TIMEOUT_S)
        except PeerUnavailable as exc:
            log.debug("copy fetch from node %d failed: %s", source, exc)
            return None
        if p is None or p.error != ErrorCode.NONE or not p.records:
            log.debug("%s-%d: node %d has nothing at %d (%s)", job.topic, job.partition,
                      source, offset, p.error.name if p is not None else "no answer")
            return None
        try:
            data = complete_batches_below(p.records, job.end_offset)
        except RecordError as exc:
            log.warning("%s-%d: node %d sent bad batches at %d: %s", job.topic, job.partition,
                        source, offset, exc)
            return None
        if len(data) < 8 or struct.unpack_from(">q", data)[0] != offset:
            return None
        return data
