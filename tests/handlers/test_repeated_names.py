"""Requests that name a topic or partition more than once, against a real in-process
node: each distinct one is looked up once, answered the way Kafka answers copies, and a
request of many copies costs no more than one of each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from node_runner import NodeRunner

from broker.handlers.metadata import distinct_requested
from broker.handlers.pacing import chunks
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

TOPIC = 2
COPIES = 20_000


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path_factory.mktemp("repeat-node") / "data", num_partitions=2)
    node.call("CreateTopics", 7, {"timeout_ms": 5000, "topics": [
        {"name": name, "num_partitions": -1, "replication_factor": -1, "assignments": [], "configs": []}
        for name in ("r-a", "r-b", "r-gone")]})
    try:
        yield node
    finally:
        node.close()


class _Entry(dict[str, Any]):
    """A decoded entry as the codec gives it: fields by key and by attribute."""

    __getattr__ = dict.__getitem__


def test_distinct_requested_keeps_first_mention_order_and_ids() -> None:
    a_id, b_id = b"\x01" * 16, b"\x02" * 16
    entries = [_Entry(name=n, topic_id=i) for n, i in
               [("b", None), ("a", None), (None, a_id), ("b", None), (None, a_id), (None, b_id)]]
    assert distinct_requested(entries) == [
        ("b", bytes(16)), ("a", bytes(16)), (None, a_id), (None, b_id)]
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]


def test_metadata_answers_each_topic_once(runner: NodeRunner) -> None:
    names = ["r-b", "r-missing", "r-a"] * COPIES
    answer = runner.call("Metadata", 12, {"topics": [{"name": n} for n in names],
                                          "allow_auto_topic_creation": False})
    assert [(t.name, t.error_code) for t in answer.topics] == [
        ("r-b", 0), ("r-missing", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), ("r-a", 0)]


def test_list_offsets_refuses_each_copy_of_a_repeated_partition(runner: NodeRunner) -> None:
    def entry(index: int) -> dict[str, int]:
        return {"partition_index": index, "current_leader_epoch": -1, "timestamp": -1}

    answer = runner.call("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": "r-a", "partitions": [entry(0), entry(1), entry(0)]},
        # The same partition under a second entry of its topic is a copy too.
        {"name": "r-b", "partitions": [entry(1)]},
        {"name": "r-b", "partitions": [entry(0), entry(1)]},
    ]})
    got = [[(p.partition_index, p.error_code) for p in t.partitions] for t in answer.topics]
    invalid = ErrorCode.INVALID_REQUEST
    assert got == [[(0, invalid), (1, 0), (0, invalid)], [(1, invalid)], [(0, 0), (1, invalid)]]


def test_delete_topics_refuses_a_repeated_name_once_and_deletes_the_rest(runner: NodeRunner) -> None:
    answer = runner.call("DeleteTopics", 4, {"topic_names": ["r-gone", "r-b", "r-gone", "r-b"],
                                              "timeout_ms": 5000})
    assert sorted((r.name, r.error_code) for r in answer.responses) == [
        ("r-b", ErrorCode.INVALID_REQUEST), ("r-gone", ErrorCode.INVALID_REQUEST)]
    answer = runner.call("DeleteTopics", 4, {"topic_names": ["r-gone", "r-b-never"], "timeout_ms": 5000})
    assert [(r.name, r.error_code) for r in answer.responses] == [
        ("r-gone", 0), ("r-b-never", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]


def test_describe_configs_describes_a_repeated_resource_once(runner: NodeRunner) -> None:
    resource = {"resource_type": TOPIC, "resource_name": "r-a", "configuration_keys": None}
    only = {"resource_type": TOPIC, "resource_name": "r-a", "configuration_keys": ["retention.ms"]}
    answer = runner.call("DescribeConfigs", 4, {"resources": [resource] * COPIES + [only, only]})
    assert [(r.resource_name, len(r.configs) > 1) for r in answer.results] == [("r-a", True), ("r-a", False)]


def test_offset_fetch_and_fetch_answer_a_repeated_partition_once(runner: NodeRunner) -> None:
    answer = runner.call("OffsetFetch", 7, {"group_id": "r-group", "require_stable": False, "topics": [
        {"name": "r-a", "partition_indexes": [0, 1, 0] * COPIES}]})
    assert [[p.partition_index for p in t.partitions] for t in answer.topics] == [[0, 1]]
    wanted = [{"partition": i % 2, "fetch_offset": 0, "partition_max_bytes": 1 << 20,
               "current_leader_epoch": -1, "log_start_offset": -1} for i in range(COPIES)]
    answer = runner.call("Fetch", 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0,
                                       "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0,
                                       "session_epoch": -1, "topics": [{"topic": "r-a", "partitions": wanted}]})
    assert [[(p.partition_index, p.error_code) for p in t.partitions] for t in answer.responses] == [
        [(0, 0), (1, 0)]]
