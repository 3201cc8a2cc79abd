"""An idempotent producer's batches stay in order on a connection after one fails.

A producer pipelines up to five batches per partition. When one fails with a retriable
error, the producer sends it again and then the ones after it. Those after it that are
already on their way must not be written first: the leader would refuse them as out of
order, and librdkafka answers that by bumping its producer epoch and sending again,
under new sequence numbers, every batch it still has in doubt. A batch in doubt that
was in fact written (its leader died before answering) is then stored twice.

A direct connection to the leader gives this order for free: a leader that fails takes
the connection down with it, and every batch in flight on it fails too. Walrus forwards
produces, so the node a client talks to outlives the leader it forwarded to, and the
next batch could find the leader back (or a new one) and be written past the gap.

So after a batch of producer P for partition p fails here, later batches of P's same
epoch for p that reached this connection before the client could have seen the failure
fail with the same error, unwritten; the producer retries them after the failed one.
The retry of the failed batch itself goes through and lifts the gate; so does anything
that arrives once the client has had the answer (a grace period covers the network), a
new producer epoch, or a batch of an earlier sequence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from broker.partitions.producer_state import NO_PRODUCER_ID
from broker.protocol.errors import ErrorCode
from broker.protocol.records import BatchHeader, RecordError, parse_header

# How long after a failure's answer a batch may still arrive that was sent before the
# client read it: the network's round trip, with a wide margin.
GRACE_S = 1.0
# Sequences wrap at 2**31; a batch within half of that ahead of the failed one follows it.
_SEQUENCE_SPACE = 1 << 31
# Refusals that mean "written": what follows them is in order.
_WRITTEN = frozenset({ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND})

GateKey = tuple[str, int, int]  # topic, partition, producer id


@dataclass(slots=True)
class _Failure:
    producer_epoch: int
    first_sequence: int
    error: ErrorCode
    # Batches received up to this moment (time.monotonic()) were sent before the
    # client read the failure.
    successors_until: float


def idempotent_header(records: bytes | memoryview) -> BatchHeader | None:
    """The batch header when the batch comes from an idempotent producer."""
    try:
        header = parse_header(records)
    except RecordError:
        return None  # the append refuses it with the precise error
    if header.producer_id == NO_PRODUCER_ID or header.base_sequence < 0:
        return None
    return header


def _follows(sequence: int, failed: int) -> bool:
    return 0 < (sequence - failed) % _SEQUENCE_SPACE < _SEQUENCE_SPACE // 2


class ProduceOrderGate:
    """One connection's failed idempotent batches, per partition and producer."""

    def __init__(self) -> None:
        self._failures: dict[GateKey, _Failure] = {}

    def __bool__(self) -> bool:
        return bool(self._failures)

    def refusal(self, topic: str, partition: int, header: BatchHeader,
                received_at: float) -> ErrorCode | None:
        """The error to answer this batch with unwritten, or None to place it."""
        key = (topic, partition, header.producer_id)
        failure = self._failures.get(key)
        if failure is None:
            return None
        if (header.producer_epoch != failure.producer_epoch
                or received_at > failure.successors_until
                or header.base_sequence == failure.first_sequence):
            # A new epoch, a batch the client sent knowing of the failure, or the retry
            # of the failed batch: the gap this guarded against is closed.
            del self._failures[key]
            return None
        if _follows(header.base_sequence, failure.first_sequence):
            return failure.error
        return None  # an earlier batch: writing it cannot jump the gap

    def failed(self, topic: str, partition: int, header: BatchHeader, error: ErrorCode,
               answered_at: float | None = None) -> None:
        """This connection is answering `error` for the batch: its successors wait."""
        if not error.retriable or error in _WRITTEN:
            return
        key = (topic, partition, header.producer_id)
        if key in self._failures:
            return  # the earliest failed batch is the one the producer resends first
        answered = time.monotonic() if answered_at is None else answered_at
        self._failures[key] = _Failure(header.producer_epoch, header.base_sequence, error,
                                       answered + GRACE_S)

    def forget_older_than(self, now: float) -> None:
        """Drop failures whose successors can no longer be on their way."""
        for key in [k for k, f in self._failures.items() if f.successors_until < now]:
            del self._failures[key]
