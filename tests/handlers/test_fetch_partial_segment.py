"""A node holding only the head of a sealed segment reads the rest from a node that has
it all, and never answers the offsets it lacks as out of range.

A leader can be left with less of its segment than the seal: a follower took over and
sealed it further on (with records the dead leader never stored), or the leader's
own tail was cut at recovery. Its copy still serves the offsets it has; a Fetch past
them was answered OFFSET_OUT_OF_RANGE, which makes a consumer reset to the log end and
skip records.
"""

from __future__ import annotations

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import (
    BrokerHeartbeat,
    RegisterBroker,
    RollSegment,
    UnregisterBroker,
)
from broker.handlers.fetch import _locate, _Wanted
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch

pytestmark = pytest.mark.unit

OTHER = 2
TOPIC = "partial"
HELD = 5
SEAL = 8


def _wanted(offset: int) -> _Wanted:
    return _Wanted(TOPIC, bytes(16), 0, offset, 1 << 20, -1)


def _partial_segment(runner: NodeRunner) -> None:
    """Epoch 0 of TOPIC-0 led here with offsets 0..HELD-1, sealed by the metadata at SEAL."""
    node = runner.node
    runner.run(node.propose(RegisterBroker(OTHER, "127.0.0.1", 1)))
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": TOPIC, "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": 0, "broker_ids": [node.node_id, OTHER]}]}],
        "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE, created
    batch = encode_batch([Record(i, 0, None, b"v%d" % i, []) for i in range(HELD)])
    answer = runner.call("Produce", 9, {"transactional_id": None, "acks": 1, "timeout_ms": 5000,
                                        "topic_data": [{"name": TOPIC, "partition_data": [
                                            {"index": 0, "records": batch}]}]})
    assert answer.responses[0].partition_responses[0].error_code == ErrorCode.NONE
    runner.run(node.propose(RollSegment(TOPIC, 0, 0, SEAL)))
    runner.run(node.propose(BrokerHeartbeat(OTHER)))


def _locate_now(runner: NodeRunner, offset: int, *, local_only: bool = False) -> _Wanted:
    async def locate() -> _Wanted:
        w = _wanted(offset)
        _locate(runner.node, w, local_only=local_only)
        return w
    return runner.run(locate())


def test_offsets_past_a_partial_copy_are_read_from_a_node_that_holds_the_segment(runner: NodeRunner) -> None:
    _partial_segment(runner)
    head = _locate_now(runner, HELD - 2)
    assert (head.error, head.holder) == (ErrorCode.NONE, runner.node.node_id)
    past = _locate_now(runner, HELD)
    assert (past.error, past.holder) == (ErrorCode.NONE, OTHER)


def test_asked_by_another_node_for_offsets_past_its_copy_it_says_so_retriably(runner: NodeRunner) -> None:
    # The asking node then tries the segment's next holder (fetch._read_all) instead
    # of handing the consumer an out-of-range answer that resets it to the log end.
    _partial_segment(runner)
    past = _locate_now(runner, HELD, local_only=True)
    assert past.error == ErrorCode.NOT_LEADER_OR_FOLLOWER
    head = _locate_now(runner, HELD - 1, local_only=True)
    assert (head.error, head.holder) == (ErrorCode.NONE, runner.node.node_id)


def test_with_no_other_holder_alive_the_answer_is_retriable_not_out_of_range(runner: NodeRunner) -> None:
    _partial_segment(runner)
    runner.run(runner.node.propose(UnregisterBroker(OTHER)))
    answer = runner.call("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": TOPIC, "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": HELD, "last_fetched_epoch": -1,
            "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})
    part = answer.responses[0].partitions[0]
    assert part.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode(part.error_code).name
    # The offsets it has are still served.
    head = _locate_now(runner, 0)
    assert (head.error, head.holder) == (ErrorCode.NONE, runner.node.node_id)
