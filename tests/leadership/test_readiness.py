"""A node takes up the leadership the metadata gives it when the entry is applied, not
when a request happens by; a read never changes leadership state (readiness.py)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import BrokerHeartbeat, RegisterBroker
from broker.handlers.registry import REGISTRY
from broker.protocol import api_key_for_name, decode_request, encode_request
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch
from broker.server.connection import ClientInfo

pytestmark = pytest.mark.unit

OTHER = 2
TOPIC = "ready"


def _create(runner: NodeRunner) -> None:
    runner.run(runner.node.propose(RegisterBroker(OTHER, "127.0.0.1", 1)))
    runner.run(runner.node.propose(BrokerHeartbeat(OTHER)))
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": TOPIC, "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": 0, "broker_ids": [runner.node.node_id, OTHER]}]}],
        "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE, created


def _fetch(runner: NodeRunner) -> int:
    answer = runner.call("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": TOPIC, "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
            "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})
    return int(answer.responses[0].partitions[0].error_code)


def _produce(runner: NodeRunner) -> int:
    answer = runner.call("Produce", 9, {"transactional_id": None, "acks": 1, "timeout_ms": 5000,
                                        "topic_data": [{"name": TOPIC, "partition_data": [
                                            {"index": 0, "records": encode_batch([Record(0, 0, None, b"v", [])])}]}]})
    return int(answer.responses[0].partition_responses[0].error_code)


def test_leadership_of_a_new_partition_is_taken_up_before_any_request(runner: NodeRunner) -> None:
    _create(runner)
    replica = runner.node.replicas.get(TOPIC, 0)  # type: ignore[union-attr]
    assert replica is not None, "the partition this node leads was not opened on the apply"
    assert replica.tracker is not None and replica.tracker_epoch == 0
    assert sorted(replica.tracker.replicas) == [runner.node.node_id, OTHER]
    assert _fetch(runner) == ErrorCode.NONE


def test_a_read_takes_no_step_and_a_write_takes_the_ones_due(runner: NodeRunner) -> None:
    _create(runner)
    replica = runner.node.replicas.get(TOPIC, 0)  # type: ignore[union-attr]
    assert replica is not None

    async def forget_the_followers() -> None:
        # As if the apply that made this node leader had not been followed yet.
        replica.lead_with_followers(None)
    runner.run(forget_the_followers())

    assert _fetch(runner) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    answer = runner.call("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": TOPIC, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    assert answer.topics[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert replica.tracker is None, "a read changed leadership state"

    assert _produce(runner) == ErrorCode.NONE
    assert replica.tracker is not None and replica.tracker_epoch == 0
    assert _fetch(runner) == ErrorCode.NONE


def test_a_read_racing_the_apply_waits_for_it_once_instead_of_failing(runner: NodeRunner) -> None:
    # The apply's callback is queued on the loop when the read first looks: the read
    # lets it run and is then served, rather than sending the client to refresh.
    _create(runner)
    replica = runner.node.replicas.get(TOPIC, 0)  # type: ignore[union-attr]
    assert replica is not None
    api_key = api_key_for_name("Fetch")
    request = decode_request(encode_request(api_key, 12, 1, "unit", {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": TOPIC, "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
            "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})[4:])

    async def racing() -> Any:
        replica.lead_with_followers(None)
        asyncio.get_running_loop().call_soon(functools.partial(runner.node.readiness.catch_up, look_anyway=True))
        return await REGISTRY[api_key].handler(runner.node, ClientInfo(1, "127.0.0.1", 1), request)

    answer = runner.run(racing())
    assert answer["responses"][0]["partitions"][0]["error_code"] == ErrorCode.NONE
    assert replica.tracker is not None


def test_an_entry_about_one_partition_takes_up_that_one_and_leaves_the_rest_to_a_full_look(
        runner: NodeRunner) -> None:
    _create(runner)
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": "other", "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": 0, "broker_ids": [runner.node.node_id, OTHER]}]}],
        "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE
    manager = runner.node.replicas
    assert manager is not None
    mine, other = manager.get(TOPIC, 0), manager.get("other", 0)
    assert mine is not None and other is not None
    readiness = runner.node.readiness

    async def scenario() -> None:
        for replica in (mine, other):
            replica.lead_with_followers(None)
        assert readiness.catch_up(look_anyway=True, only=(TOPIC, 0)) == 1
        assert mine.tracker is not None and other.tracker is None
        assert readiness.catch_up(look_anyway=True) == 1
        assert other.tracker is not None
    runner.run(scenario())
