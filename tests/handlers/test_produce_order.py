"""ProduceOrderGate: after an idempotent batch fails on a connection, its pipelined
successors fail too, until the producer sends the failed batch again."""

from __future__ import annotations

import pytest

from broker.handlers.produce_order import GRACE_S, ProduceOrderGate, idempotent_header
from broker.protocol.errors import ErrorCode
from broker.protocol.records import BatchHeader, encode_batch

pytestmark = pytest.mark.unit

INT32_MAX = 2**31 - 1
FAILED_AT = 100.0  # when the failure was answered (time.monotonic() scale)


def batch(sequence: int, *, producer: int = 7, epoch: int = 0, records: int = 1) -> BatchHeader:
    header = idempotent_header(encode_batch(
        [(None, b"v")] * records, producer_id=producer, producer_epoch=epoch, base_sequence=sequence))
    assert header is not None
    return header


def failed_gate(sequence: int = 10, error: ErrorCode = ErrorCode.REQUEST_TIMED_OUT) -> ProduceOrderGate:
    gate = ProduceOrderGate()
    gate.failed("t", 0, batch(sequence), error, answered_at=FAILED_AT)
    return gate


def test_successors_sent_before_the_failure_was_read_fail_with_its_error() -> None:
    gate = failed_gate(10)
    for sequence in (11, 12, 14):
        assert gate.refusal("t", 0, batch(sequence), received_at=FAILED_AT - 0.5) is ErrorCode.REQUEST_TIMED_OUT
    # Until the client could have read the answer, with the grace for the network.
    assert gate.refusal("t", 0, batch(15), received_at=FAILED_AT + GRACE_S) is ErrorCode.REQUEST_TIMED_OUT


def test_the_retry_of_the_failed_batch_lifts_the_gate() -> None:
    gate = failed_gate(10)
    assert gate.refusal("t", 0, batch(10), received_at=FAILED_AT + 0.1) is None
    assert not gate
    # Its successors, resent right behind it, are written in order now.
    assert gate.refusal("t", 0, batch(11), received_at=FAILED_AT + 0.1) is None


def test_a_retry_that_fails_again_gates_what_follows_it_again() -> None:
    gate = failed_gate(10)
    assert gate.refusal("t", 0, batch(10), received_at=FAILED_AT + 0.2) is None
    gate.failed("t", 0, batch(10), ErrorCode.NOT_LEADER_OR_FOLLOWER, answered_at=FAILED_AT + 0.3)
    assert gate.refusal("t", 0, batch(11), received_at=FAILED_AT + 0.25) is ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_a_batch_sent_after_the_client_had_the_answer_is_placed() -> None:
    # The producer retried elsewhere and came back here later: nothing to guard.
    gate = failed_gate(10)
    assert gate.refusal("t", 0, batch(20), received_at=FAILED_AT + GRACE_S + 0.01) is None
    assert not gate


def test_a_new_producer_epoch_lifts_the_gate() -> None:
    gate = failed_gate(10)
    assert gate.refusal("t", 0, batch(0, epoch=1), received_at=FAILED_AT) is None
    assert not gate


def test_an_earlier_batch_passes_and_the_gate_stays() -> None:
    gate = failed_gate(10)
    assert gate.refusal("t", 0, batch(5), received_at=FAILED_AT) is None
    assert gate.refusal("t", 0, batch(11), received_at=FAILED_AT) is ErrorCode.REQUEST_TIMED_OUT


def test_other_partitions_and_producers_are_not_gated() -> None:
    gate = failed_gate(10)
    assert gate.refusal("t", 1, batch(11), received_at=FAILED_AT) is None
    assert gate.refusal("u", 0, batch(11), received_at=FAILED_AT) is None
    assert gate.refusal("t", 0, batch(11, producer=8), received_at=FAILED_AT) is None
    assert gate.refusal("t", 0, batch(11), received_at=FAILED_AT) is ErrorCode.REQUEST_TIMED_OUT


def test_the_earliest_failure_is_the_one_kept() -> None:
    gate = failed_gate(10)
    gate.failed("t", 0, batch(12), ErrorCode.NOT_ENOUGH_REPLICAS, answered_at=FAILED_AT + 0.1)
    # Only the retry of 10 lifts it, and 12 is still a successor.
    assert gate.refusal("t", 0, batch(12), received_at=FAILED_AT) is ErrorCode.REQUEST_TIMED_OUT


def test_sequences_that_wrap_still_follow() -> None:
    gate = failed_gate(INT32_MAX - 1)
    assert gate.refusal("t", 0, batch(INT32_MAX), received_at=FAILED_AT) is ErrorCode.REQUEST_TIMED_OUT
    assert gate.refusal("t", 0, batch(3), received_at=FAILED_AT) is ErrorCode.REQUEST_TIMED_OUT


@pytest.mark.parametrize("error", [
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,  # written: what follows is in order
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,  # not retriable: the producer resets itself
    ErrorCode.MESSAGE_TOO_LARGE,
])
def test_failures_that_leave_no_gap_to_guard_set_no_gate(error: ErrorCode) -> None:
    assert not failed_gate(10, error)


def test_only_idempotent_batches_have_a_header_to_gate() -> None:
    assert idempotent_header(encode_batch([(None, b"v")])) is None
    assert idempotent_header(b"\x00" * 10) is None
    header = batch(3, records=4)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 0, 3)


def test_failures_whose_successors_are_all_in_are_forgotten() -> None:
    gate = failed_gate(10)
    gate.forget_older_than(FAILED_AT + GRACE_S / 2)
    assert gate
    gate.forget_older_than(FAILED_AT + GRACE_S + 0.1)
    assert not gate
