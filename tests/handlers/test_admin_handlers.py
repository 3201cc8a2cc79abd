"""Admin handlers against a real in-process node (Raft of one, real logs on disk):
the edge cases clients rarely send, checked through the codec both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from node_runner import NodeRunner

from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path_factory.mktemp("admin-node") / "data", num_partitions=2)
    try:
        yield node
    finally:
        node.close()


def create(runner: NodeRunner, *topics: dict[str, Any], validate_only: bool = False) -> list[Any]:
    full = [{"num_partitions": -1, "replication_factor": -1, "assignments": [], "configs": [], **t} for t in topics]
    return list(runner.call("CreateTopics", 7, {"topics": full, "timeout_ms": 5000, "validate_only": validate_only}).topics)


def incremental(runner: NodeRunner, kind: int, name: str, *ops: tuple[str, int, str | None],
                validate_only: bool = False) -> Any:
    configs = [{"name": n, "config_operation": op, "value": v} for n, op, v in ops]
    body = {"resources": [{"resource_type": kind, "resource_name": name, "configs": configs}],
            "validate_only": validate_only}
    (answer,) = runner.call("IncrementalAlterConfigs", 1, body).responses
    return answer


def described(runner: NodeRunner, kind: int, name: str) -> dict[str, Any]:
    body = {"resources": [{"resource_type": kind, "resource_name": name, "configuration_keys": None}],
            "include_synonyms": True}
    (result,) = runner.call("DescribeConfigs", 4, body).results
    assert result.error_code == ErrorCode.NONE, result.error_message
    return {c.name: c for c in result.configs}


def test_defaults_come_from_the_broker_config(runner: NodeRunner) -> None:
    (answer,) = create(runner, {"name": "u-defaults"})
    assert (answer.error_code, answer.num_partitions, answer.replication_factor) == (0, 2, 1)


def test_duplicate_topics_in_one_request_are_both_refused(runner: NodeRunner) -> None:
    answers = create(runner, {"name": "u-twice"}, {"name": "u-twice"}, {"name": "u-once"})
    assert [a.error_code for a in answers] == [ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, 0]


def test_assignment_and_counts_together_are_an_invalid_request(runner: NodeRunner) -> None:
    (answer,) = create(runner, {"name": "u-both", "num_partitions": 1,
                                "assignments": [{"partition_index": 0, "broker_ids": [1]}]})
    assert answer.error_code == ErrorCode.INVALID_REQUEST
    (gap,) = create(runner, {"name": "u-gap", "assignments": [{"partition_index": 1, "broker_ids": [1]}]})
    assert gap.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT


def test_validate_only_answers_what_creation_would(runner: NodeRunner) -> None:
    (dry,) = create(runner, {"name": "u-dry", "num_partitions": 3,
                             "configs": [{"name": "message.timestamp.type", "value": "LogAppendTime"}]},
                    validate_only=True)
    assert (dry.error_code, dry.num_partitions) == (0, 3)
    with runner.node.metadata() as state:
        assert state.topic("u-dry") is None
    (bad,) = create(runner, {"name": "u-dry", "configs": [{"name": "message.timestamp.type", "value": "Now"}]},
                    validate_only=True)
    assert bad.error_code == ErrorCode.INVALID_CONFIG


def test_append_and_subtract_work_on_list_configs_only(runner: NodeRunner) -> None:
    create(runner, {"name": "u-lists"})
    assert incremental(runner, TOPIC, "u-lists", ("cleanup.policy", APPEND, "delete")).error_code == 0
    assert described(runner, TOPIC, "u-lists")["cleanup.policy"].value == "delete"
    emptied = incremental(runner, TOPIC, "u-lists", ("cleanup.policy", SUBTRACT, "delete"))
    assert emptied.error_code == ErrorCode.INVALID_CONFIG
    compact = incremental(runner, TOPIC, "u-lists", ("cleanup.policy", APPEND, "compact"))
    assert compact.error_code == ErrorCode.INVALID_CONFIG and "compaction" in compact.error_message
    assert incremental(runner, TOPIC, "u-lists", ("segment.ms", APPEND, "1")).error_code == ErrorCode.INVALID_CONFIG
    assert incremental(runner, TOPIC, "u-lists", ("segment.ms", 9, "1")).error_code == ErrorCode.INVALID_REQUEST
    twice = incremental(runner, TOPIC, "u-lists", ("segment.ms", SET, "1000"), ("segment.ms", DELETE, None))
    assert twice.error_code == ErrorCode.INVALID_REQUEST


def test_altered_topic_config_reaches_the_open_log(runner: NodeRunner) -> None:
    create(runner, {"name": "u-live", "num_partitions": 1})
    assert runner.node.replicas is not None
    replica = runner.node.replicas.get_or_open("u-live", 0)
    assert incremental(runner, TOPIC, "u-live", ("max.message.bytes", SET, "5000")).error_code == 0
    assert replica.log.log.config.max_message_bytes == 5000
    dry = incremental(runner, TOPIC, "u-live", ("max.message.bytes", SET, "7000"), validate_only=True)
    assert dry.error_code == 0
    assert replica.log.log.config.max_message_bytes == 5000


def test_topic_beats_broker_beats_cluster_default(runner: NodeRunner) -> None:
    create(runner, {"name": "u-layers", "num_partitions": 1})
    assert incremental(runner, BROKER, "", ("log.retention.bytes", SET, "3000")).error_code == 0
    layers = described(runner, TOPIC, "u-layers")["retention.bytes"]
    assert (layers.value, layers.config_source) == ("3000", 3)
    assert incremental(runner, BROKER, "1", ("log.retention.bytes", SET, "2000")).error_code == 0
    assert runner.node.replicas is not None
    open_log = runner.node.replicas.get_or_open("u-layers", 0).log.log
    assert open_log.config.retention_bytes == 2000
    assert incremental(runner, TOPIC, "u-layers", ("retention.bytes", SET, "1000")).error_code == 0
    layers = described(runner, TOPIC, "u-layers")["retention.bytes"]
    assert layers.value == "1000"
    assert [(s.name, s.value, s.source) for s in layers.synonyms] == [
        ("retention.bytes", "1000", 1),
        ("log.retention.bytes", "2000", 2),
        ("log.retention.bytes", "3000", 3),
        ("log.retention.bytes", "-1", 5),
    ]
    assert runner.node.log_config("u-layers").retention_bytes == 1000
    assert open_log.config.retention_bytes == 1000
    broker = described(runner, BROKER, "1")["log.retention.bytes"]
    assert (broker.value, broker.config_source) == ("2000", 2)
    cluster = described(runner, BROKER, "")
    assert {name: c.value for name, c in cluster.items()} == {"log.retention.bytes": "3000"}
    for kind, name, config in ((TOPIC, "u-layers", "retention.bytes"), (BROKER, "1", "log.retention.bytes"),
                               (BROKER, "", "log.retention.bytes")):
        assert incremental(runner, kind, name, (config, DELETE, None)).error_code == 0
    assert described(runner, TOPIC, "u-layers")["retention.bytes"].config_source == 5


def test_broker_only_configs_are_checked(runner: NodeRunner) -> None:
    assert incremental(runner, BROKER, "1", ("num.partitions", SET, "0")).error_code == ErrorCode.INVALID_CONFIG
    assert incremental(runner, BROKER, "1", ("no.such.thing", SET, "1")).error_code == ErrorCode.INVALID_CONFIG
    assert incremental(runner, BROKER, "1", ("retention.ms", SET, "1")).error_code == ErrorCode.INVALID_CONFIG
    assert incremental(runner, BROKER, "1", ("num.partitions", SET, "4")).error_code == 0
    try:
        (answer,) = create(runner, {"name": "u-four"})
        assert answer.num_partitions == 4
    finally:
        assert incremental(runner, BROKER, "1", ("num.partitions", DELETE, None)).error_code == 0


def test_create_partitions_checks_each_topic(runner: NodeRunner) -> None:
    create(runner, {"name": "u-parts", "num_partitions": 1})
    body = {"topics": [
        {"name": "u-parts", "count": 3, "assignments": [{"broker_ids": [1]}, {"broker_ids": [1]}]},
        {"name": "u-missing", "count": 3, "assignments": None},
    ], "timeout_ms": 5000, "validate_only": False}
    results = runner.call("CreatePartitions", 3, body).results
    assert [r.error_code for r in results] == [0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    wrong = {"topics": [{"name": "u-parts", "count": 5, "assignments": [{"broker_ids": [1]}]}],
             "timeout_ms": 5000, "validate_only": False}
    (answer,) = runner.call("CreatePartitions", 3, wrong).results
    assert answer.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    with runner.node.metadata() as state:
        topic = state.topic("u-parts")
        assert topic is not None and len(topic.partitions) == 3
