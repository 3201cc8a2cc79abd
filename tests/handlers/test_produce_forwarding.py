"""Produce sent to a node that does not lead the partition.

A plain batch is forwarded. If the leader fails mid-request, the answer must say "maybe
written" (REQUEST_TIMED_OUT), never "not leader", which says "not written". A real
in-process node forwards to a real socket that reads the request and drops the
connection, as a leader killed after receiving it would.

An idempotent producer's batch is refused with NOT_LEADER_OR_FOLLOWER and not
forwarded, as Kafka refuses it: a forwarded copy still on its way when the producer's
next batch reaches the leader directly would be a sequence gap there, and the producer
would send the forwarded batch again under a new epoch."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import RegisterBroker
from broker.partitions.role import Event
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch

pytestmark = pytest.mark.unit

DYING_LEADER = 2


class DyingLeader:
    """Accepts connections, reads one request, closes without answering."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                size = int.from_bytes(conn.recv(4, socket.MSG_WAITALL), "big")
                if conn.recv(size, socket.MSG_WAITALL):
                    self.requests += 1

    def close(self) -> None:
        self.sock.close()


def _produce_to_the_dying_leaders_partition(runner: NodeRunner, leader: DyingLeader, topic: str,
                                            batch: bytes) -> tuple[ErrorCode, int]:
    """(error, partition) answered by the in-process node for a partition that
    `leader` leads."""
    runner.run(runner.node.propose(RegisterBroker(DYING_LEADER, "127.0.0.1", leader.port)))
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": topic, "num_partitions": 2, "replication_factor": 1, "assignments": [],
        "configs": []}], "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE
    md = runner.call("Metadata", 12, {"topics": [{"name": topic}]})
    partition = next(p.partition_index for p in md.topics[0].partitions if p.leader_id == DYING_LEADER)
    answer = runner.call("Produce", 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                                        "topic_data": [{"name": topic, "partition_data": [
                                            {"index": partition, "records": batch}]}]})
    part = answer.responses[0].partition_responses[0]
    return ErrorCode(part.error_code), partition


def test_a_leader_lost_mid_request_is_answered_as_maybe_written(runner: NodeRunner) -> None:
    leader = DyingLeader()
    try:
        error, _ = _produce_to_the_dying_leaders_partition(
            runner, leader, "fwd", encode_batch([Record(0, 0, None, b"v", [])]))
        assert leader.requests >= 1, "the request never reached the leader"
        assert error == ErrorCode.REQUEST_TIMED_OUT, error.name
    finally:
        leader.close()


def test_an_idempotent_batch_for_another_leader_is_refused_not_forwarded(runner: NodeRunner) -> None:
    leader = DyingLeader()
    try:
        batch = encode_batch([Record(0, 0, None, b"v", [])], producer_id=5, producer_epoch=0,
                             base_sequence=0)
        started = time.monotonic()
        error, _ = _produce_to_the_dying_leaders_partition(runner, leader, "fwd-idempotent", batch)
        assert error == ErrorCode.NOT_LEADER_OR_FOLLOWER, error.name
        # Answered at once: not held for leadership that may come back here.
        assert time.monotonic() - started < 2.0
        assert leader.requests == 0, "the batch was forwarded"
    finally:
        leader.close()


def test_a_produce_during_a_roll_waits_for_it_instead_of_being_refused(runner: NodeRunner) -> None:
    runner.call("CreateTopics", 7, {"topics": [{
        "name": "rolling", "num_partitions": 1, "replication_factor": 1, "assignments": [],
        "configs": []}], "timeout_ms": 5000, "validate_only": False})

    def produce(seq: int) -> tuple[int, int]:
        batch = encode_batch([Record(0, 0, None, b"v", [])], producer_id=6, producer_epoch=0,
                             base_sequence=seq)
        answer = runner.call("Produce", 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                                            "topic_data": [{"name": "rolling", "partition_data": [
                                                {"index": 0, "records": batch}]}]})
        part = answer.responses[0].partition_responses[0]
        return int(part.error_code), int(part.base_offset)

    assert produce(0) == (ErrorCode.NONE, 0)
    assert runner.node.replicas is not None
    replica = runner.node.replicas.get("rolling", 0)
    assert replica is not None
    # A roll is being proposed: appends stop until it is applied (or put off).
    epoch = replica.log.log.active_epoch
    assert replica.role.handle(Event.START_ROLL, epoch)
    runner.loop.call_soon_threadsafe(runner.loop.call_later, 0.3, replica.role.handle, Event.ROLL_ENDED, epoch)
    # The next batch is held, then written, not refused with NOT_LEADER_OR_FOLLOWER
    # (its successor, already on the way, would be a sequence gap).
    assert produce(1) == (ErrorCode.NONE, 1)
