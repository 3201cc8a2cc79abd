"""Every version of every admin API the broker advertises, sent byte for byte with the
broker's own codec: older and newer clients get the fields their version carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from broker.protocol import SUPPORTED_VERSIONS, api_key_for_name
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

pytestmark = pytest.mark.compat

TOPIC, BROKER = 2, 4
DYNAMIC_TOPIC, DYNAMIC_DEFAULT_BROKER, DEFAULT = 1, 3, 5
UNKNOWN_TOPIC_OR_PARTITION, OFFSET_OUT_OF_RANGE, INVALID_REQUEST = 3, 1, 42
UNKNOWN_TOPIC_ID, UNSUPPORTED_ENDPOINT_TYPE = 100, 115


def versions(api: str) -> range:
    low, high = SUPPORTED_VERSIONS[api_key_for_name(api)]
    return range(low, high + 1)


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[RawClient]:
    with RawClient(broker.bootstrap) as raw:
        yield raw


def create(client: RawClient, name: str, version: int = 7, partitions: int = 1, **extra: object) -> object:
    topic = {"name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [], "configs": []}
    topic.update(extra)
    (answer,) = client.request("CreateTopics", version, {"topics": [topic], "timeout_ms": 5000}).topics
    return answer


def topic_entries(client: RawClient, name: str, version: int = 4, **flags: bool) -> dict[str, object]:
    body = {"resources": [{"resource_type": TOPIC, "resource_name": name, "configuration_keys": None}], **flags}
    (result,) = client.request("DescribeConfigs", version, body).results
    assert result.error_code == 0
    return {c.name: c for c in result.configs}


def test_create_topics_at_every_version(client: RawClient) -> None:
    for v in versions("CreateTopics"):
        answer = create(client, f"v{v}-topic", v, partitions=2,
                        configs=[{"name": "retention.ms", "value": "90000"}])
        assert answer.error_code == 0, v
        if v >= 5:
            assert (answer.num_partitions, answer.replication_factor) == (2, 1)
            configs = {c.name: c for c in answer.configs}
            assert (configs["retention.ms"].value, configs["retention.ms"].config_source) == ("90000", DYNAMIC_TOPIC)
        if v >= 7:
            assert answer.topic_id != uuid.UUID(int=0)
    assert create(client, "v0-topic", 0).error_code == 36  # TOPIC_ALREADY_EXISTS


def test_delete_topics_by_name_and_by_id(client: RawClient) -> None:
    for v in versions("DeleteTopics"):
        name = f"doomed-{v}"
        topic_id = create(client, name).topic_id
        body: dict[str, object] = {"timeout_ms": 5000}
        if v >= 6:
            body["topics"] = [{"name": None, "topic_id": topic_id}]
        else:
            body["topic_names"] = [name]
        (answer,) = client.request("DeleteTopics", v, body).responses
        assert answer.error_code == 0, v
        assert answer.name == name
    (unknown_id,) = client.request(
        "DeleteTopics", 6, {"topics": [{"name": None, "topic_id": uuid.uuid4()}], "timeout_ms": 5000}
    ).responses
    assert unknown_id.error_code == UNKNOWN_TOPIC_ID
    (unknown_name,) = client.request("DeleteTopics", 5, {"topic_names": ["never-was"], "timeout_ms": 5000}).responses
    assert unknown_name.error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_describe_configs_fields_by_version(client: RawClient) -> None:
    create(client, "described", configs=[{"name": "segment.ms", "value": "60000"}])
    v0 = topic_entries(client, "described", 0)
    assert v0["segment.ms"].is_default is False and v0["retention.ms"].is_default is True
    for v in versions("DescribeConfigs"):
        entries = topic_entries(client, "described", v, include_synonyms=v >= 1, include_documentation=v >= 3)
        assert entries["segment.ms"].value == "60000"
        if v >= 1:
            assert entries["segment.ms"].config_source == DYNAMIC_TOPIC
            assert [s.source for s in entries["segment.ms"].synonyms] == [DYNAMIC_TOPIC, DEFAULT]
            assert entries["segment.ms"].synonyms[1].name == "log.roll.ms"
        if v >= 3:
            assert entries["segment.ms"].config_type == 5  # LONG
            assert entries["cleanup.policy"].config_type == 7  # LIST
            assert entries["segment.ms"].documentation
    only = client.request("DescribeConfigs", 4, {"resources": [
        {"resource_type": TOPIC, "resource_name": "described", "configuration_keys": ["segment.ms"]},
        {"resource_type": TOPIC, "resource_name": "missing", "configuration_keys": None},
        {"resource_type": BROKER, "resource_name": "42", "configuration_keys": None},
    ]}).results
    assert [c.name for c in only[0].configs] == ["segment.ms"]
    assert only[0].configs[0].documentation is None
    assert [r.error_code for r in only] == [0, UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST]


def test_alter_configs_on_the_cluster_default_reaches_every_topic(client: RawClient) -> None:
    create(client, "inheriting")
    for v in versions("AlterConfigs"):
        body = {"resources": [{"resource_type": BROKER, "resource_name": "",
                               "configs": [{"name": "log.retention.bytes", "value": str(1000 + v)}]}],
                "validate_only": False}
        (answer,) = client.request("AlterConfigs", v, body).responses
        assert answer.error_code == 0, v
        retention = topic_entries(client, "inheriting")["retention.bytes"]
        assert (retention.value, retention.config_source) == (str(1000 + v), DYNAMIC_DEFAULT_BROKER)
    for v in versions("IncrementalAlterConfigs"):
        body = {"resources": [{"resource_type": BROKER, "resource_name": "",
                               "configs": [{"name": "log.retention.bytes", "config_operation": 1, "value": None}]}],
                "validate_only": False}
        (answer,) = client.request("IncrementalAlterConfigs", v, body).responses
        assert answer.error_code == 0, v
    assert topic_entries(client, "inheriting")["retention.bytes"].config_source == DEFAULT


def test_partitions_and_records_at_every_version(client: RawClient) -> None:
    create(client, "growing")
    for count, v in enumerate(versions("CreatePartitions"), start=2):
        body = {"topics": [{"name": "growing", "count": count, "assignments": None}],
                "timeout_ms": 5000, "validate_only": False}
        (answer,) = client.request("CreatePartitions", v, body).results
        assert answer.error_code == 0, v
    for v in versions("DeleteRecords"):
        body = {"topics": [{"name": "growing", "partitions": [{"partition_index": 0, "offset": -1},
                                                             {"partition_index": 1, "offset": 5}]}],
                "timeout_ms": 5000}
        (topic,) = client.request("DeleteRecords", v, body).topics
        assert [(p.error_code, p.low_watermark) for p in topic.partitions] == [(0, 0), (OFFSET_OUT_OF_RANGE, -1)]


def test_cluster_and_log_dirs_at_every_version(client: RawClient, broker: BrokerProcess) -> None:
    for v in versions("DescribeCluster"):
        answer = client.request("DescribeCluster", v, {"include_cluster_authorized_operations": False})
        assert answer.error_code == 0 and answer.controller_id == 1
        assert [(b.broker_id, b.port) for b in answer.brokers] == [(1, broker.port)]
    controllers = client.request("DescribeCluster", 1, {"include_cluster_authorized_operations": False,
                                                        "endpoint_type": 2})
    assert controllers.error_code == UNSUPPORTED_ENDPOINT_TYPE
    create(client, "on-disk", partitions=2)
    for v in versions("DescribeLogDirs"):
        (result,) = client.request("DescribeLogDirs", v, {"topics": None}).results
        assert result.log_dir.endswith("/logs")
        listed = {(t.name, p.partition_index) for t in result.topics for p in t.partitions}
        assert {("on-disk", 0), ("on-disk", 1)} <= listed
        if v >= 4:
            assert 0 < result.usable_bytes <= result.total_bytes
