"""Partition counts are a client's numbers: a request that asks for more partitions
than Kafka's controller creates at once is refused before anything is proposed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from node_runner import NodeRunner

from broker.handlers.admin_topics import MAX_PARTITIONS_PER_REQUEST
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path_factory.mktemp("counts-node") / "data")
    try:
        yield node
    finally:
        node.close()


def _create(runner: NodeRunner, name: str, count: int) -> tuple[int, str | None]:
    answer = runner.call("CreateTopics", 7, {"timeout_ms": 5000, "topics": [
        {"name": name, "num_partitions": count, "replication_factor": 1, "assignments": [],
         "configs": []}]})
    return answer.topics[0].error_code, answer.topics[0].error_message


def test_create_topics_refuses_an_excessive_partition_count(runner: NodeRunner) -> None:
    error, message = _create(runner, "c-huge", 2**31 - 1)
    assert error == ErrorCode.INVALID_PARTITIONS and "Excessively large" in (message or "")
    assert _create(runner, "c-max", MAX_PARTITIONS_PER_REQUEST + 1)[0] == ErrorCode.INVALID_PARTITIONS
    answer = runner.call("Metadata", 12, {"topics": [{"name": "c-huge"}], "allow_auto_topic_creation": False})
    assert answer.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_create_partitions_refuses_an_excessive_increase(runner: NodeRunner) -> None:
    assert _create(runner, "c-grow", 2) == (0, None)

    def grow(count: int) -> int:
        answer = runner.call("CreatePartitions", 3, {"timeout_ms": 5000, "validate_only": True, "topics": [
            {"name": "c-grow", "count": count, "assignments": None}]})
        return int(answer.results[0].error_code)

    assert grow(2 + MAX_PARTITIONS_PER_REQUEST + 1) == ErrorCode.INVALID_PARTITIONS
    assert grow(2**31 - 1) == ErrorCode.INVALID_PARTITIONS
    assert grow(10) == ErrorCode.NONE
