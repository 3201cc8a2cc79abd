"""Topic and config administration through kafka-python's KafkaAdminClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)
from kafka.errors import InvalidPartitionsError, OffsetOutOfRangeError

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat

# Kafka error codes the per-topic answers carry.
TOPIC_ALREADY_EXISTS, INVALID_TOPIC, INVALID_PARTITIONS = 36, 17, 37
INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG = 38, 39, 40


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for this module: each test works on topics of its own."""
    process = BrokerProcess(Path(tmp_path_factory.mktemp("admin-kp")) / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def admin(shared_broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, request_timeout_ms=10_000)
    try:
        yield client
    finally:
        client.close()


def produce(bootstrap: str, topic: str, count: int, partition: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for i in range(count):
            producer.send(topic, f"record-{i}".encode(), partition=partition)
        producer.flush(10)
    finally:
        producer.close()


def offsets(admin: KafkaAdminClient, topic: str, spec: OffsetSpec, partition: int = 0) -> int:
    answer = admin.list_partition_offsets({TopicPartition(topic, partition): spec})
    return answer[TopicPartition(topic, partition)].offset


def errors_by_topic(response: dict) -> dict[str, int]:
    return {t["name"]: t["error_code"] for t in response["topics"]}


def test_created_topic_reports_and_keeps_its_config_overrides(admin: KafkaAdminClient) -> None:
    created = admin.create_topics(
        [NewTopic("kp-created", 3, 1, topic_configs={"retention.ms": "3600000", "max.message.bytes": "65536"})]
    )
    (answer,) = created["topics"]
    assert answer["error_code"] == 0
    assert answer["num_partitions"] == 3 and answer["replication_factor"] == 1
    assert answer["configs"]["retention.ms"]["value"] == "3600000"
    assert answer["configs"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert answer["configs"]["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"

    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-created")], config_filter="all")
    configs = described["topic"]["kp-created"]
    assert configs["max.message.bytes"]["value"] == "65536"
    assert configs["cleanup.policy"]["value"] == "delete"
    assert configs["cleanup.policy"]["config_type"] == "LIST"
    assert len(admin.describe_topics(["kp-created"])[0]["partitions"]) == 3


def test_create_topics_answers_each_bad_topic_with_its_own_error(admin: KafkaAdminClient) -> None:
    admin.create_topics([NewTopic("kp-exists", 1, 1)])
    response = admin.create_topics(
        [
            NewTopic("kp-exists", 1, 1),
            NewTopic("kp bad name", 1, 1),
            NewTopic("kp-zero-partitions", 0, 1),
            NewTopic("kp-too-replicated", 1, 3),
            NewTopic("kp-compacted", 1, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic("kp-unknown-config", 1, 1, topic_configs={"no.such.config": "1"}),
            NewTopic("kp-tiny-segments", 1, 1, topic_configs={"segment.bytes": "10"}),
            NewTopic("kp-placed-elsewhere", replica_assignments={0: [7]}),
            NewTopic("kp-fine", 2, 1),
        ],
        raise_errors=False,
    )
    assert errors_by_topic(response) == {
        "kp-exists": TOPIC_ALREADY_EXISTS,
        "kp bad name": INVALID_TOPIC,
        "kp-zero-partitions": INVALID_PARTITIONS,
        "kp-too-replicated": INVALID_REPLICATION_FACTOR,
        "kp-compacted": INVALID_CONFIG,
        "kp-unknown-config": INVALID_CONFIG,
        "kp-tiny-segments": INVALID_CONFIG,
        "kp-placed-elsewhere": INVALID_REPLICA_ASSIGNMENT,
        "kp-fine": 0,
    }
    message = next(t for t in response["topics"] if t["name"] == "kp-compacted")["error_message"]
    assert "compaction is not supported" in message
    listed = admin.list_topics()
    assert "kp-fine" in listed and "kp-compacted" not in listed and "kp-zero-partitions" not in listed


def test_broker_defaults_fill_in_missing_partition_count_and_replication(admin: KafkaAdminClient) -> None:
    response = admin.create_topics([NewTopic("kp-defaults")])
    (answer,) = response["topics"]
    assert (answer["error_code"], answer["num_partitions"], answer["replication_factor"]) == (0, 1, 1)
    # A manual assignment the broker would choose itself is honoured.
    response = admin.create_topics([NewTopic("kp-assigned", replica_assignments={0: [1], 1: [1]})])
    assert response["topics"][0]["error_code"] == 0
    assert len(admin.describe_topics(["kp-assigned"])[0]["partitions"]) == 2


def test_validate_only_checks_but_creates_nothing(admin: KafkaAdminClient) -> None:
    response = admin.create_topics(
        [NewTopic("kp-validated", 4, 1, topic_configs={"retention.ms": "1000"})], validate_only=True
    )
    (answer,) = response["topics"]
    assert answer["error_code"] == 0 and answer["num_partitions"] == 4
    assert answer["configs"]["retention.ms"]["value"] == "1000"
    assert "kp-validated" not in admin.list_topics()
    refused = admin.create_topics([NewTopic("kp-validated", 1, 1, topic_configs={"cleanup.policy": "compact"})],
                                  validate_only=True, raise_errors=False)
    assert errors_by_topic(refused) == {"kp-validated": INVALID_CONFIG}


def test_incremental_alter_sets_deletes_and_refuses_bad_values(admin: KafkaAdminClient) -> None:
    admin.create_topics([NewTopic("kp-alter", 1, 1, topic_configs={"retention.ms": "100000"})])
    resource = ConfigResource(ConfigResourceType.TOPIC, "kp-alter", configs={
        "segment.bytes": (AlterConfigOp.SET, "1048576"),
        "retention.ms": (AlterConfigOp.DELETE, None),
    })
    assert admin.alter_configs([resource], incremental=True) == {"topic": {"kp-alter": "OK"}}
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-alter")], config_filter="all")
    topic = configs["topic"]["kp-alter"]
    assert topic["segment.bytes"]["value"] == "1048576"
    assert topic["segment.bytes"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert topic["retention.ms"]["config_source"] == "DEFAULT_CONFIG"

    bad = ConfigResource(ConfigResourceType.TOPIC, "kp-alter", configs={"cleanup.policy": (AlterConfigOp.APPEND, "compact")})
    result = admin.alter_configs([bad], incremental=True)["topic"]["kp-alter"]
    assert "InvalidConfigurationError" in result or "INVALID_CONFIG" in result.upper()
    not_a_list = ConfigResource(ConfigResourceType.TOPIC, "kp-alter", configs={"retention.ms": (AlterConfigOp.APPEND, "5")})
    assert admin.alter_configs([not_a_list], incremental=True)["topic"]["kp-alter"] != "OK"
    dry = ConfigResource(ConfigResourceType.TOPIC, "kp-alter", configs={"flush.messages": (AlterConfigOp.SET, "10")})
    assert admin.alter_configs([dry], incremental=True, validate_only=True) == {"topic": {"kp-alter": "OK"}}
    after = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-alter")], config_filter="all")
    assert after["topic"]["kp-alter"]["flush.messages"]["config_source"] == "DEFAULT_CONFIG"


def test_partitions_only_grow(admin: KafkaAdminClient, shared_broker: BrokerProcess) -> None:
    admin.create_topics([NewTopic("kp-grow", 2, 1)])
    admin.create_partitions({"kp-grow": NewPartitions(4)}, validate_only=True)
    assert len(admin.describe_topics(["kp-grow"])[0]["partitions"]) == 2
    admin.create_partitions({"kp-grow": NewPartitions(4)})
    assert len(admin.describe_topics(["kp-grow"])[0]["partitions"]) == 4
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({"kp-grow": NewPartitions(3)})
    produce(shared_broker.bootstrap, "kp-grow", 3, partition=3)
    assert offsets(admin, "kp-grow", OffsetSpec.LATEST, partition=3) == 3


def test_delete_records_moves_the_start_offset_consumers_see(admin: KafkaAdminClient, shared_broker: BrokerProcess) -> None:
    admin.create_topics([NewTopic("kp-trim", 1, 1)])
    produce(shared_broker.bootstrap, "kp-trim", 10)
    tp = TopicPartition("kp-trim", 0)
    low = admin.delete_records({tp: 4})
    assert low[tp]["low_watermark"] == 4
    assert offsets(admin, "kp-trim", OffsetSpec.EARLIEST) == 4
    consumer = KafkaConsumer(bootstrap_servers=shared_broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        seen = [r.offset for r in consumer]
    finally:
        consumer.close()
    assert seen == list(range(4, 10))
    with pytest.raises(OffsetOutOfRangeError):
        admin.delete_records({tp: 11})
    # -1 deletes up to the high watermark.
    assert admin.delete_records({tp: -1})[tp]["low_watermark"] == 10


def test_topic_deleted_and_created_again_starts_empty(admin: KafkaAdminClient, shared_broker: BrokerProcess) -> None:
    admin.create_topics([NewTopic("kp-reborn", 1, 1, topic_configs={"retention.ms": "5000"})])
    produce(shared_broker.bootstrap, "kp-reborn", 5)
    admin.delete_topics(["kp-reborn"])
    assert "kp-reborn" not in admin.list_topics()
    missing = admin.delete_topics(["kp-reborn"], raise_errors=False)
    assert missing["topics"][0]["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    admin.create_topics([NewTopic("kp-reborn", 1, 1)])
    assert offsets(admin, "kp-reborn", OffsetSpec.LATEST) == 0
    assert offsets(admin, "kp-reborn", OffsetSpec.EARLIEST) == 0
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-reborn")], config_filter="all")
    assert configs["topic"]["kp-reborn"]["retention.ms"]["config_source"] == "DEFAULT_CONFIG"


def test_cluster_and_log_dirs_describe_this_broker(admin: KafkaAdminClient, shared_broker: BrokerProcess) -> None:
    cluster = admin.describe_cluster()
    assert cluster["controller_id"] == 1
    assert [(b["broker_id"], b["port"]) for b in cluster["brokers"]] == [(1, shared_broker.port)]
    assert cluster["cluster_id"]

    admin.create_topics([NewTopic("kp-sized", 2, 1)])
    produce(shared_broker.bootstrap, "kp-sized", 20, partition=1)
    (described,) = admin.describe_log_dirs(topic_partitions={"kp-sized": [0, 1]})
    (log_dir,) = described["log_dirs"]
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"] == str((shared_broker.data_dir / "logs").resolve())
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
    sizes = {p["partition_index"]: p["partition_size"] for t in log_dir["topics"] for p in t["partitions"]}
    assert sizes[0] == 0 and sizes[1] > 20 * len(b"record-00")


def test_broker_configs_by_node_id_and_cluster_default(admin: KafkaAdminClient) -> None:
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all")
    broker = configs["broker"]["1"]
    assert broker["num.partitions"]["value"] == "1"
    assert broker["auto.create.topics.enable"]["read_only"] is True
    assert broker["log.retention.ms"]["value"] == str(7 * 24 * 3600 * 1000)
