"""A sequence gap just after leadership moved here is answered "not leader", not "out
of order": librdkafka sends a producer's next batch to the new leader while the old
leader's refusal of the batch before it is still on its way, and "out of order" would
make it bump its epoch and send again, as new, batches it holds in doubt (duplicates).
Later, or on a partition whose leadership never moved, a gap is out of order, as in
Kafka. A real in-process node; node 2 is only registered, to have led a segment."""

from __future__ import annotations

import time

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import CreateTopic, RegisterBroker, RollSegment
from broker.handlers import produce as produce_handler
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch

pytestmark = pytest.mark.unit

PRODUCER = 41


def _produce(runner: NodeRunner, topic: str, sequence: int) -> tuple[ErrorCode, int, float]:
    batch = encode_batch([Record(0, 0, None, b"v", [])], producer_id=PRODUCER, producer_epoch=0,
                         base_sequence=sequence)
    started = time.monotonic()
    answer = runner.call("Produce", 9, {"transactional_id": None, "acks": 1, "timeout_ms": 5000,
                                        "topic_data": [{"name": topic, "partition_data": [
                                            {"index": 0, "records": batch}]}]})
    part = answer.responses[0].partition_responses[0]
    return ErrorCode(part.error_code), int(part.base_offset), time.monotonic() - started


def test_a_gap_right_after_leadership_moved_here_is_not_leader_then_out_of_order(runner: NodeRunner) -> None:
    node = runner.node
    runner.run(node.propose(RegisterBroker(2, "127.0.0.1", 1)))
    # Node 2 leads the first segment (nothing is written there), then it rolls to node 1.
    # (acks=1 below: node 2 never fetches, so acks=all would wait for it.)
    runner.run(node.propose(CreateTopic("moved", b"\x07" * 16, assignments=[[2, 1]])))
    runner.run(node.propose(RollSegment("moved", 0, 0, 0)))
    with node.metadata() as state:
        active = state.active_segment("moved", 0)
        assert active is not None and active.leader == node.node_id

    assert _produce(runner, "moved", 0)[:2] == (ErrorCode.NONE, 0)
    error, _, took = _produce(runner, "moved", 5)
    assert error == ErrorCode.NOT_LEADER_OR_FOLLOWER, error.name
    assert took < 1.0, "answered at once, not placed again and again"
    # The missing batches arrive, then the one after them: all in order.
    assert _produce(runner, "moved", 1)[:2] == (ErrorCode.NONE, 1)

    # Long after the move, a gap is what Kafka calls it.
    assert node.replicas is not None
    replica = node.replicas.get("moved", 0)
    assert replica is not None
    replica.segment_started_ms -= (produce_handler.GAP_AFTER_MOVE_S + 1) * 1000
    assert _produce(runner, "moved", 5)[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_gap_where_leadership_never_moved_is_out_of_order(runner: NodeRunner) -> None:
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": "stayed", "num_partitions": 1, "replication_factor": 1, "assignments": [],
        "configs": []}], "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE
    assert _produce(runner, "stayed", 0)[:2] == (ErrorCode.NONE, 0)
    assert _produce(runner, "stayed", 5)[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
