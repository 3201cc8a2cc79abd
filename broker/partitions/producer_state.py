"""Idempotent-producer bookkeeping for one partition, following Kafka's rules.

For each producer id the partition remembers the current epoch and the last few
batches (first/last sequence and the offsets they were written at). A retried batch
that matches one of them is a duplicate: it is answered with the original offsets and
not written again. Anything else must continue the sequence exactly.

Kafka keeps five batches per producer because a producer has at most five requests in
flight (max.in.flight.requests.per.connection <= 5 with idempotence).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

MAX_CACHED_BATCHES = 5
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
INT32_MAX = 2**31 - 1


class SequenceVerdict(Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    STALE_EPOCH = "stale_epoch"


@dataclass(slots=True, frozen=True)
class CachedBatch:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: deque[CachedBatch] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))
    last_timestamp: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


@dataclass(slots=True, frozen=True)
class Check:
    verdict: SequenceVerdict
    duplicate_of: CachedBatch | None = None
    reason: str = ""


def next_sequence(seq: int) -> int:
    # Sequences wrap from Int32.MAX back to 0, as in Kafka.
    return 0 if seq == INT32_MAX else seq + 1


def last_sequence(first_seq: int, record_count: int) -> int:
    last = first_seq + record_count - 1
    return last - INT32_MAX - 1 if last > INT32_MAX else last


class ProducerStateTable:
    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    def check(self, producer_id: int, epoch: int, first_seq: int, last_seq: int) -> Check:
        """Decide what to do with a batch, without changing any state."""
        entry = self._producers.get(producer_id)
        if entry is None:
            # A producer we know nothing about (new, or its state expired): accept its
            # sequence as the start, as Kafka does since KIP-360.
            return Check(SequenceVerdict.ACCEPT)
        if epoch < entry.epoch:
            return Check(
                SequenceVerdict.STALE_EPOCH,
                reason=f"producer {producer_id} epoch {epoch} is older than {entry.epoch}",
            )
        if epoch == entry.epoch:
            for cached in entry.batches:
                if cached.first_seq == first_seq and cached.last_seq == last_seq:
                    return Check(SequenceVerdict.DUPLICATE, duplicate_of=cached)
            if first_seq != next_sequence(entry.last_seq):
                return Check(
                    SequenceVerdict.OUT_OF_ORDER,
                    reason=(
                        f"producer {producer_id} epoch {epoch}: expected sequence "
                        f"{next_sequence(entry.last_seq)}, got {first_seq}"
                    ),
                )
            return Check(SequenceVerdict.ACCEPT)
        # A newer epoch starts its sequence again at 0.
        if first_seq != 0:
            return Check(
                SequenceVerdict.OUT_OF_ORDER,
                reason=f"producer {producer_id} new epoch {epoch} must start at sequence 0, got {first_seq}",
            )
        return Check(SequenceVerdict.ACCEPT)

    def record(
        self,
        producer_id: int,
        epoch: int,
        first_seq: int,
        last_seq: int,
        first_offset: int,
        last_offset: int,
        timestamp: int,
    ) -> None:
        """Remember a batch that was written (at append, or when rebuilding from the log)."""
        entry = self._producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            entry = ProducerEntry(epoch)
            self._producers[producer_id] = entry
        elif epoch < entry.epoch:
            return
        entry.batches.append(CachedBatch(first_seq, last_seq, first_offset, last_offset, timestamp))
        entry.last_timestamp = max(entry.last_timestamp, timestamp)

    def items(self) -> list[tuple[int, ProducerEntry]]:
        return list(self._producers.items())

    def snapshot(self) -> list[list[Any]]:
        """The whole table as JSON-safe lists: [producer id, epoch, last timestamp,
        [[first seq, last seq, first offset, last offset, timestamp], ...]] per producer.
        A leader that seals a segment hands this to the next one through the metadata, so
        retried batches are still recognised, with their offsets, wherever they land."""
        return [
            [pid, e.epoch, e.last_timestamp,
             [[b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp] for b in e.batches]]
            for pid, e in sorted(self._producers.items())
        ]

    @classmethod
    def from_snapshot(cls, rows: list[list[Any]]) -> ProducerStateTable:
        """Inverse of snapshot(). Raises ValueError (or TypeError) on a malformed row."""
        table = cls()
        for pid, epoch, last_timestamp, batches in rows:
            entry = ProducerEntry(int(epoch))
            for first_seq, last_seq, first_offset, last_offset, ts in batches:
                entry.batches.append(CachedBatch(int(first_seq), int(last_seq), int(first_offset),
                                                 int(last_offset), int(ts)))
            entry.last_timestamp = int(last_timestamp)
            table._producers[int(pid)] = entry
        return table

    def replace_with_last_sequences(self, seeds: list[tuple[int, int, int, int]]) -> None:
        """Start over from (producer id, epoch, last sequence, last timestamp) learnt from
        the node that led the previous segment: sequences continue where they were,
        while anything this node remembered from older segments it led is dropped."""
        self._producers.clear()
        for pid, epoch, last_seq, timestamp in seeds:
            entry = ProducerEntry(epoch)
            if last_seq >= 0:
                entry.batches.append(CachedBatch(last_seq, last_seq, -1, -1, timestamp))
            entry.last_timestamp = timestamp
            self._producers[pid] = entry

    def truncate_after(self, offset: int) -> None:
        """Forget batches written at or after `offset` (the log was truncated there)."""
        for pid in list(self._producers):
            entry = self._producers[pid]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if not kept:
                del self._producers[pid]
            else:
                entry.batches.clear()
                entry.batches.extend(kept)

    def expire(self, older_than_ms: int) -> int:
        """Drop producers idle since before `older_than_ms` (transactional.id.expiration
        / producer.id.expiration.ms in Kafka)."""
        stale = [pid for pid, e in self._producers.items() if e.last_timestamp < older_than_ms]
        for pid in stale:
            del self._producers[pid]
        return len(stale)
