"""One partition as this node serves it: validation, idempotence, append, the high
watermark, and waking the fetches that wait for new data.

The append path stays free of awaits between the idempotence check and the log write:
on one event loop that makes check-and-append atomic without a lock, so two pipelined
batches of one producer can never both pass the same sequence check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.log import AsyncLog, LogStorageError, OffsetNotHeldError, ReadResult
from broker.log.errors import FencedEpochError, InvalidAppendError, RecordTooLargeError
from broker.partitions.contents_check import check_contents, uncompressed_bound
from broker.partitions.in_sync import InSyncTracker
from broker.partitions.producer_state import (
    NO_PRODUCER_ID,
    ProducerStateTable,
    SequenceVerdict,
    last_sequence,
)
from broker.partitions.role import PartitionRole, Role
from broker.protocol.errors import ErrorCode
from broker.protocol.records import BatchHeader, RecordError, iter_batches

log = logging.getLogger(__name__)

# How much of the log is read at a time when rebuilding producer state at open.
_SCAN_CHUNK = 8 << 20
# Producer sequences learnt when leadership came here (adopt_producers).
PRODUCER_SNAPSHOT = "producer-snapshot.json"
# Kafka's producer.id.expiration.ms default.
PRODUCER_EXPIRATION_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """A produced batch that passed PartitionReplica.check, with its header."""

    records: bytes | memoryview
    header: BatchHeader


@dataclass(slots=True)
class ProduceOutcome:
    error: ErrorCode
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    # One past the last offset of the appended (or duplicate) batch: what acks=all waits for.
    next_offset: int = -1


class PartitionReplica:
    def __init__(self, topic: str, partition: int, log: AsyncLog,
                 sealed_ends: Callable[[], dict[int, int]] | None = None,
                 producers_at: Callable[[int, int], list[Any] | None] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.log = log
        # epoch -> end offset of this partition's sealed segments, from the metadata.
        self._sealed_ends = sealed_ends or dict
        # (epoch, base offset) -> the producer rows that segment starts from, from the
        # metadata (None when it has none).
        self._producers_at = producers_at or (lambda epoch, base: None)
        self.producers = ProducerStateTable()
        # Set while this node leads a segment with followers: their progress decides
        # the high watermark. Without one, what is written here is committed.
        self.tracker: InSyncTracker | None = None
        self.tracker_epoch = -1
        self.high_watermark = log.log.log_end_offset
        self._waiters: set[asyncio.Future[None]] = set()
        # A roll, a learning of producer state or a failover's seal under way
        # (partitions/role.py); appends wait for the first two.
        self.role = PartitionRole(on_settled=self._wake_settled)
        # Produce requests waiting for a roll or a learning to end (wait_until_settled).
        self._settle_waiters: set[asyncio.Future[None]] = set()
        # Bytes written to the active segment by this node, and when it began here:
        # the roll thresholds segment.bytes and segment.ms.
        self.segment_bytes_written = self._active_segment_size()
        self.segment_started_ms = time.monotonic() * 1000
        self._rebuild_producer_state()

    @property
    def log_start_offset(self) -> int:
        return self.log.log.log_start_offset

    # -- leadership moving to or from this node -------------------------------------

    @property
    def rolling_epoch(self) -> int | None:
        """The epoch of the segment a roll is being proposed for here, if one is."""
        return self.role.epoch_if(Role.ROLLING)

    @property
    def learning_producers(self) -> bool:
        """This node, new to leading the partition, is learning its producers'
        sequences from the previous segment's leader."""
        return self.role.role is Role.LEARNING

    @property
    def sealing_epoch(self) -> int | None:
        """The epoch of the active segment this node is sealing in a failover: it takes
        nothing more of it from the old leader meanwhile (replication/failover.py)."""
        return self.role.epoch_if(Role.SEALING)

    @property
    def moving(self) -> bool:
        """A roll is being proposed here, or producer state learnt: appends wait."""
        return self.role.holds_appends

    def _wake_settled(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until_settled(self, timeout: float) -> bool:
        """Until no roll or learning holds appends back (True), or `timeout` passes."""
        if not self.moving:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settle_waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._settle_waiters.discard(waiter)
        return not self.moving

    @property
    def log_end_offset(self) -> int:
        return self.log.log.log_end_offset

    def _active_segment_size(self) -> int:
        segments = self.log.log.segments()
        return segments[-1].size_bytes if segments and not segments[-1].sealed else 0

    def begin_segment(self, epoch: int, base_offset: int) -> None:
        """Start writing the segment of `epoch`, which the metadata opened at
        `base_offset` (where the previous one was sealed, maybe on another node)."""
        plog = self.log.log
        if plog.active_epoch >= epoch:
            return
        local = plog.segments()
        if local and not local[-1].sealed:
            # The segment this replica was writing may have been sealed by another node
            # (a failover) at an earlier offset than it holds: cut to the seal first.
            end = self._sealed_ends().get(local[-1].epoch)
            if end is not None and end < plog.log_end_offset and end >= local[-1].base_offset:
                log.warning("%s-%d: truncating %d records past the seal of epoch %d at %d",
                            self.topic, self.partition, plog.log_end_offset - end,
                            local[-1].epoch, end)
                plog.truncate_to(end)
                self.producers.truncate_after(end)
                self.high_watermark = min(self.high_watermark, end)
        if plog.log_end_offset > base_offset:
            # Records past the point where the metadata sealed the previous segment were
            # never committed (a leader that died, or a follower ahead of the seal):
            # cut them, as Kafka truncates a divergent log by leader epoch.
            log.warning("%s-%d: truncating %d uncommitted records past offset %d",
                        self.topic, self.partition, plog.log_end_offset - base_offset, base_offset)
            plog.truncate_to(base_offset)
            self.producers.truncate_after(base_offset)
            self.high_watermark = min(self.high_watermark, base_offset)
        rows = self._producers_at(epoch, base_offset)
        if rows is not None:
            # The metadata holds every producer's state at this segment's base, as its
            # sealer had it: authoritative where this replica's own may be partial (it
            # missed segments, or truncation dropped batches it can no longer replay).
            self.adopt_producer_rows(base_offset, rows)
        elif plog.log_end_offset < base_offset:
            # Other nodes wrote the offsets in between, so each producer's sequence here
            # is stale: forget them, and a producer's next batch starts afresh (KIP-360)
            # instead of being refused as out of order, which kills an idempotent producer.
            # (A leader then learns the current ones: adopt_producers.)
            self.adopt_producers(base_offset, [])
        plog.begin_segment(epoch, base_offset=base_offset)
        self.segment_bytes_written = 0
        self.segment_started_ms = time.monotonic() * 1000
        self.high_watermark = max(self.high_watermark, plog.log_end_offset)

    # ------------------------------------------------------------------ replication

    def lead_with_followers(self, tracker: InSyncTracker | None) -> None:
        """This node leads the active segment; `tracker` follows its followers (None
        when it has none)."""
        if tracker is not None and tracker is not self.tracker:
            # Followers have confirmed nothing to this tracker yet. The high watermark
            # may still stand at the log end, where a restart puts it: records this
            # node wrote before it crashed, that no follower may hold, would count as
            # committed, and a retried batch among them be acknowledged at once. Back
            # to the active segment's base (sealed segments are committed); the
            # followers' fetches move it on.
            segments = self.log.log.segments()
            base = segments[-1].base_offset if segments and not segments[-1].sealed else self.log_end_offset
            self.high_watermark = min(self.high_watermark, max(base, self.log_start_offset))
        self.tracker = tracker
        self.refresh_high_watermark()

    def refresh_high_watermark(self) -> None:
        leo = self.log_end_offset
        self._advance_high_watermark(leo if self.tracker is None else self.tracker.high_watermark(leo))

    def follower_fetched(self, follower: int, offset: int) -> None:
        if self.tracker is not None:
            self.tracker.follower_fetched(follower, offset, self.log_end_offset, time.monotonic() * 1000)
            self.refresh_high_watermark()

    async def wait_for_high_watermark(self, target: int, timeout: float) -> bool:
        """Until every in-sync replica holds the offsets below `target` (acks=all)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.high_watermark < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self.add_waiter(waiter)
            try:
                # asyncio.timeout, not wait_for: lighter on this acks=all path, and on
                # 3.11 wait_for can drop the cancel of a produce whose client left.
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                return self.high_watermark >= target
            finally:
                self.remove_waiter(waiter)
        return True

    def append_replicated(self, records: bytes | memoryview, epoch: int, leader_high_watermark: int) -> int:
        """Write batches fetched from the segment's leader, offsets as assigned there;
        returns the new log end offset."""
        result = self.log.log.append(records, epoch=epoch, replicated=True)
        for _, header in iter_batches(records, validate=False, allow_partial_tail=True):
            if header.producer_id != NO_PRODUCER_ID and header.base_sequence >= 0:
                # Followers keep producer state too, so duplicates are still caught
                # after leadership moves here.
                self.producers.record(
                    header.producer_id, header.producer_epoch, header.base_sequence,
                    last_sequence(header.base_sequence, header.last_offset_delta + 1),
                    header.base_offset, header.last_offset, header.max_timestamp,
                )
        self.segment_bytes_written += result.size_bytes
        self._advance_high_watermark(min(leader_high_watermark, result.log_end_offset))
        return result.log_end_offset

    def holds_sealed(self, epoch: int, base_offset: int, end_offset: int) -> bool:
        """Whether this replica has all of the sealed segment of `epoch`, the offsets
        [base_offset, end_offset). The base counts as much as the end: a log reopened
        after its last segment was sealed begins an empty placeholder of epoch 0 at its
        end, and once sealed that placeholder must not pass for the real epoch 0, of
        which this copy may hold only the head."""
        return any(
            s.epoch == epoch and s.sealed and s.base_offset <= base_offset
            and (s.end_offset or 0) >= end_offset
            for s in self.log.log.segments()
        )

    def holds_offset(self, epoch: int, offset: int) -> bool:
        """Whether this replica's copy of the segment of `epoch` reaches past `offset`
        (a copy can stop short of the seal: a follower that lagged when it came)."""
        plog = self.log.log
        for s in plog.segments():
            end = s.end_offset if s.end_offset is not None else plog.log_end_offset
            if s.epoch == epoch and s.base_offset <= offset < end:
                return True
        return False

    def seal_at(self, epoch: int, end_offset: int) -> bool:
        """The metadata sealed the segment of `epoch` at `end_offset`: seal the local
        copy there. False when this replica has less than that (it missed records)."""
        plog = self.log.log
        segments = plog.segments()
        if (plog.active_epoch != epoch or (segments and segments[-1].sealed)
                or (segments and segments[-1].base_offset > end_offset)):
            # Not the segment being sealed: reopening a log whose last segment is sealed
            # begins an empty one of epoch 0 at its end, which no seal of epoch 0 concerns.
            # The earliest local segment of the epoch is its real copy, never that one.
            base = min((s.base_offset for s in segments if s.epoch == epoch), default=end_offset)
            return self.holds_sealed(epoch, base, end_offset)
        if plog.log_end_offset > end_offset:
            log.warning("%s-%d: truncating %d records past the seal at %d",
                        self.topic, self.partition, plog.log_end_offset - end_offset, end_offset)
            plog.truncate_to(end_offset)
            self.producers.truncate_after(end_offset)
        if plog.log_end_offset < end_offset:
            return False
        plog.seal_segment()
        self.high_watermark = max(self.high_watermark, end_offset)
        return True

    def set_follower_high_watermark(self, leader_high_watermark: int) -> None:
        self._advance_high_watermark(min(leader_high_watermark, self.log_end_offset))

    def producer_rows_for_seal(self) -> list[Any]:
        """This replica's producer table as a seal hands it to the next segment, without
        producers idle past producer.id.expiration.ms (Kafka forgets them too; their
        next batch is then taken at its word), so it does not grow without end."""
        self.producers.expire(int(time.time() * 1000) - PRODUCER_EXPIRATION_MS)
        return self.producers.snapshot()

    def adopt_producers(self, base_offset: int, seeds: list[tuple[int, int, int, int]]) -> None:
        """From `base_offset` on, producers stand at these (id, epoch, last sequence, last
        timestamp), learnt from the node that led before; what this replica remembers
        from older segments is stale."""
        self.producers.replace_with_last_sequences(seeds)
        self._save_producer_snapshot(base_offset)

    def adopt_producer_rows(self, base_offset: int, rows: list[Any]) -> None:
        """From `base_offset` on, producers stand as in `rows` (ProducerStateTable.snapshot()
        of the node that sealed the segment before)."""
        try:
            table = ProducerStateTable.from_snapshot(rows)
        except (TypeError, ValueError) as exc:
            # Not expected from the metadata; an empty table at least never holds a
            # producer to a stale sequence.
            log.error("%s-%d: malformed producer state for offset %d (%s); starting afresh",
                      self.topic, self.partition, base_offset, exc)
            table = ProducerStateTable()
        self.producers = table
        self._save_producer_snapshot(base_offset)

    def _save_producer_snapshot(self, base_offset: int) -> None:
        """Kept on disk, so a restart replays batches from `base_offset` on top of this
        state instead of rebuilding it from segments that may have holes."""
        path = os.path.join(self.log.log.directory, PRODUCER_SNAPSHOT)
        body = json.dumps({"base_offset": base_offset, "table": self.producers.snapshot()})
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _load_producer_snapshot(self) -> int:
        """Start from the adopted producer state, if any; returns the offset to replay
        batches from."""
        path = os.path.join(self.log.log.directory, PRODUCER_SNAPSHOT)
        try:
            with open(path, encoding="utf-8") as f:
                body = json.load(f)
            base = int(body["base_offset"])
            if "table" in body:
                table = ProducerStateTable.from_snapshot(body["table"])
            else:
                # Written before snapshots held whole batches: last sequences only.
                table = ProducerStateTable()
                table.replace_with_last_sequences(
                    [(int(a), int(b), int(c), int(d)) for a, b, c, d in body["producers"]])
        except FileNotFoundError:
            return self.log.log.log_start_offset
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Without it, replaying the whole log is the best left: sequences may be
            # stale, which answers OUT_OF_ORDER rather than losing anything.
            log.warning("%s-%d: unreadable producer snapshot (%s); replaying the whole log",
                        self.topic, self.partition, exc)
            return self.log.log.log_start_offset
        self.producers = table
        return max(base, self.log.log.log_start_offset)

    def _rebuild_producer_state(self) -> None:
        """Producer sequences live in the batch headers; replaying them restores
        duplicate detection across a restart."""
        plog = self.log.log
        offset = self._load_producer_snapshot()
        end = plog.log_end_offset
        while offset < end:
            try:
                chunk = plog.read(offset, _SCAN_CHUNK)
            except OffsetNotHeldError as gap:
                # Segments other nodes led sit between the ones held here: producers
                # wrote there too, so what came before the gap is stale.
                offset = gap.next_offset
                self.producers = ProducerStateTable()
                continue
            if not chunk.data:
                break
            for _, header in iter_batches(chunk.data, validate=False, allow_partial_tail=True):
                if header.producer_id != NO_PRODUCER_ID and header.base_sequence >= 0:
                    self.producers.record(
                        header.producer_id,
                        header.producer_epoch,
                        header.base_sequence,
                        last_sequence(header.base_sequence, header.last_offset_delta + 1),
                        header.base_offset,
                        header.last_offset,
                        header.max_timestamp,
                    )
            offset = chunk.next_offset

    # ------------------------------------------------------------------ produce

    async def check(self, records: bytes | memoryview) -> CheckedBatch | ProduceOutcome:
        """Everything about one produce request's records for this partition that the
        bytes alone decide: one batch, intact, within max.message.bytes, and holding
        exactly the records its header announces. Nothing here depends on or changes the
        partition's state, so it may take its time (awaiting) before the append."""
        try:
            batches = list(iter_batches(records, validate=True))
        except RecordError as exc:
            log.info("%s-%d: refused produce: %s", self.topic, self.partition, exc.reason)
            return ProduceOutcome(ErrorCode(exc.error_code), message=exc.reason)
        if len(batches) != 1:
            # Produce v3+ carries exactly one batch per partition, as Kafka requires.
            return ProduceOutcome(
                ErrorCode.INVALID_RECORD,
                message=f"expected exactly one record batch, got {len(batches)}",
            )
        _, header = batches[0]
        max_message_bytes = self.log.log.config.max_message_bytes
        if header.size > max_message_bytes:
            return ProduceOutcome(
                ErrorCode.MESSAGE_TOO_LARGE,
                message=f"batch of {header.size} bytes exceeds max.message.bytes",
            )
        try:
            await check_contents(records, header, uncompressed_bound(max_message_bytes))
        except RecordError as exc:
            log.info("%s-%d: refused produce: %s batch announcing %d records: %s", self.topic,
                     self.partition, header.compression.name.lower(), header.records_count,
                     exc.reason)
            return ProduceOutcome(ErrorCode(exc.error_code), message=exc.reason)
        if header.is_control or header.is_transactional:
            return ProduceOutcome(
                ErrorCode.INVALID_RECORD,
                message="transactional and control batches are not accepted",
            )
        return CheckedBatch(records, header)

    async def append(self, batch: CheckedBatch | bytes | memoryview, *,
                     epoch: int | None) -> ProduceOutcome:
        """Append one produce request's records for this partition, checking them first
        unless `check` already has (the produce handler checks before it takes the write
        lease, so a long check cannot outlast the lease).

        Returns once the topic's flush policy is met for these records.
        """
        if not isinstance(batch, CheckedBatch):
            checked = await self.check(batch)
            if isinstance(checked, ProduceOutcome):
                return checked
            batch = checked
        records, header = batch.records, batch.header
        # From here to the log write nothing awaits (module docstring).
        if self.moving:
            return ProduceOutcome(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                message="leadership is moving to or from this node",
            )
        duplicate = self._check_sequence(header)
        if duplicate is not None:
            return duplicate
        plog = self.log.log
        try:
            # Synchronous up to the page-cache write: nothing else runs between the
            # sequence check above and recording the batch below.
            result = plog.append(records, epoch=epoch, defer_sync=True)
        except RecordTooLargeError as exc:
            return ProduceOutcome(ErrorCode.MESSAGE_TOO_LARGE, message=str(exc))
        except FencedEpochError as exc:
            return ProduceOutcome(ErrorCode.NOT_LEADER_OR_FOLLOWER, message=str(exc))
        except InvalidAppendError as exc:
            return ProduceOutcome(ErrorCode.CORRUPT_MESSAGE, message=str(exc))
        except LogStorageError as exc:
            log.error("%s-%d: storage error on append: %s", self.topic, self.partition, exc)
            return ProduceOutcome(ErrorCode.KAFKA_STORAGE_ERROR, message=str(exc))
        if header.producer_id != NO_PRODUCER_ID:
            self.producers.record(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                last_sequence(header.base_sequence, header.records_count),
                result.first_offset,
                result.last_offset,
                int(time.time() * 1000),
            )
        self.segment_bytes_written += result.size_bytes
        if self.tracker is not None:
            # Followers long-poll for new data below the high watermark's next move.
            self.wake_waiters()
        self.refresh_high_watermark()
        if result.needs_sync:
            # The topic's flush policy wants these records on disk before the answer;
            # the flusher thread does it, sharing one fdatasync among concurrent appends.
            try:
                await self.log.flush()
            except LogStorageError as exc:
                log.error("%s-%d: storage error on flush: %s", self.topic, self.partition, exc)
                return ProduceOutcome(ErrorCode.KAFKA_STORAGE_ERROR, message=str(exc))
        return ProduceOutcome(
            ErrorCode.NONE,
            base_offset=result.first_offset,
            log_append_time=result.log_append_time,
            log_start_offset=plog.log_start_offset,
            next_offset=result.log_end_offset,
        )

    def _check_sequence(self, header: BatchHeader) -> ProduceOutcome | None:
        if header.producer_id == NO_PRODUCER_ID:
            return None
        last_seq = last_sequence(header.base_sequence, header.records_count)
        check = self.producers.check(
            header.producer_id, header.producer_epoch, header.base_sequence, last_seq
        )
        if check.verdict is SequenceVerdict.ACCEPT:
            return None
        if check.verdict is SequenceVerdict.DUPLICATE:
            assert check.duplicate_of is not None
            log.debug("%s-%d: duplicate batch from producer %d answered with offset %d",
                      self.topic, self.partition, header.producer_id,
                      check.duplicate_of.first_offset)
            return ProduceOutcome(
                ErrorCode.NONE,
                base_offset=check.duplicate_of.first_offset,
                log_start_offset=self.log_start_offset,
                next_offset=check.duplicate_of.last_offset + 1,
            )
        code = (
            ErrorCode.INVALID_PRODUCER_EPOCH
            if check.verdict is SequenceVerdict.STALE_EPOCH
            else ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        )
        log.info("%s-%d: %s", self.topic, self.partition, check.reason)
        return ProduceOutcome(code, message=check.reason)

    # ------------------------------------------------------------------ fetch

    def read(self, offset: int, max_bytes: int, *, for_follower: bool = False) -> ReadResult:
        """Whole batches from the one holding `offset`, never past the high watermark
        (a follower reads up to the log end: it is how the high watermark moves).
        Raises OffsetOutOfRangeError."""
        limit = None if for_follower else self.high_watermark
        return self.log.read(offset, max_bytes, max_offset=limit)

    def _advance_high_watermark(self, offset: int) -> None:
        if offset > self.high_watermark:
            self.high_watermark = offset
            waiters, self._waiters = self._waiters, set()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Complete `waiter` when the high watermark next moves."""
        self._waiters.add(waiter)

    def remove_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)

    def wake_waiters(self) -> None:
        """Wake waiting fetches and acks: new data for followers, or the partition was
        deleted or moved."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
