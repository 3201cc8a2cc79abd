"""Topic and config administration through confluent-kafka's AdminClient (librdkafka)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(Path(tmp_path_factory.mktemp("admin-ck")) / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def admin(shared_broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": shared_broker.bootstrap})


def result(future: Future[Any]) -> Any:
    return future.result(timeout=15)


def error_of(future: Future[Any]) -> int:
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return 0


def topic_configs(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return result(future)


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, f"value-{i}".encode(), partition=0)
    assert producer.flush(10) == 0


def earliest(admin: AdminClient, topic: str) -> int:
    tp = TopicPartition(topic, 0)
    return int(result(admin.list_offsets({tp: OffsetSpec.earliest()})[tp]).offset)


def test_create_with_configs_and_validate_only(admin: AdminClient) -> None:
    futures = admin.create_topics(
        [NewTopic("ck-created", 2, 1, config={"retention.bytes": "1048576", "flush.messages": "1"})]
    )
    result(futures["ck-created"])
    configs = topic_configs(admin, "ck-created")
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert not configs["segment.bytes"].is_read_only

    dry = admin.create_topics([NewTopic("ck-dry", 1, 1)], validate_only=True)
    result(dry["ck-dry"])
    assert "ck-dry" not in admin.list_topics(timeout=10).topics
    refused = admin.create_topics(
        [NewTopic("ck-compact", 1, 1, config={"cleanup.policy": "compact"}), NewTopic("ck-created", 1, 1)]
    )
    assert error_of(refused["ck-compact"]) == KafkaError.INVALID_CONFIG
    assert error_of(refused["ck-created"]) == KafkaError.TOPIC_ALREADY_EXISTS


def test_incremental_alter_configs_take_effect_and_show_synonyms(admin: AdminClient) -> None:
    result(admin.create_topics([NewTopic("ck-alter", 1, 1)])["ck-alter"])
    resource = ConfigResource(
        ResourceType.TOPIC,
        "ck-alter",
        incremental_configs=[
            ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    (future,) = admin.incremental_alter_configs([resource]).values()
    result(future)
    configs = topic_configs(admin, "ck-alter")
    assert configs["retention.ms"].value == "60000"
    assert configs["cleanup.policy"].value == "delete"
    synonyms = configs["retention.ms"].synonyms
    assert synonyms["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert synonyms["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    bad = ConfigResource(
        ResourceType.TOPIC,
        "ck-alter",
        incremental_configs=[ConfigEntry("segment.bytes", "12", incremental_operation=AlterConfigOpType.SET)],
    )
    (future,) = admin.incremental_alter_configs([bad]).values()
    assert error_of(future) == KafkaError.INVALID_CONFIG
    unknown = ConfigResource(
        ResourceType.TOPIC,
        "ck-missing",
        incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)],
    )
    (future,) = admin.incremental_alter_configs([unknown]).values()
    assert error_of(future) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_broker_override_applies_to_topics_without_their_own_value(admin: AdminClient) -> None:
    result(admin.create_topics([NewTopic("ck-inherits", 1, 1)])["ck-inherits"])

    def alter_broker(entry: ConfigEntry) -> None:
        (future,) = admin.incremental_alter_configs([ConfigResource(ResourceType.BROKER, "1", incremental_configs=[entry])]).values()
        result(future)

    alter_broker(ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET))
    try:
        inherited = topic_configs(admin, "ck-inherits")["retention.ms"]
        assert inherited.value == "7200000"
        assert inherited.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        (future,) = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")]).values()
        broker = result(future)
        assert broker["log.retention.ms"].value == "7200000"
        assert broker["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert broker["auto.create.topics.enable"].is_read_only
    finally:
        alter_broker(ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    assert topic_configs(admin, "ck-inherits")["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    read_only = ConfigResource(
        ResourceType.BROKER, "1",
        incremental_configs=[ConfigEntry("auto.create.topics.enable", "false", incremental_operation=AlterConfigOpType.SET)],
    )
    (future,) = admin.incremental_alter_configs([read_only]).values()
    assert error_of(future) == KafkaError.INVALID_CONFIG


def test_partitions_records_and_topic_deletion(admin: AdminClient, shared_broker: BrokerProcess) -> None:
    result(admin.create_topics([NewTopic("ck-lifecycle", 1, 1)])["ck-lifecycle"])
    result(admin.create_partitions([NewPartitions("ck-lifecycle", 3)])["ck-lifecycle"])
    assert len(admin.list_topics("ck-lifecycle", timeout=10).topics["ck-lifecycle"].partitions) == 3
    shrink = admin.create_partitions([NewPartitions("ck-lifecycle", 2)])["ck-lifecycle"]
    assert error_of(shrink) == KafkaError.INVALID_PARTITIONS

    produce(shared_broker.bootstrap, "ck-lifecycle", 8)
    tp = TopicPartition("ck-lifecycle", 0, 5)
    deleted = result(admin.delete_records([tp])[tp])
    assert deleted.low_watermark == 5
    assert earliest(admin, "ck-lifecycle") == 5

    result(admin.delete_topics(["ck-lifecycle"])["ck-lifecycle"])
    assert "ck-lifecycle" not in admin.list_topics(timeout=10).topics
    assert error_of(admin.delete_topics(["ck-lifecycle"])["ck-lifecycle"]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_cluster_names_the_controller(admin: AdminClient, shared_broker: BrokerProcess) -> None:
    cluster = result(admin.describe_cluster())
    assert cluster.cluster_id
    assert cluster.controller is not None and cluster.controller.id == 1
    assert [(n.id, n.port) for n in cluster.nodes] == [(1, shared_broker.port)]
