"""Admin changes are metadata committed through Raft and applied to the open logs: they
survive a restart, and altered log settings change what the log does right away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import (
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewTopic,
    OffsetSpec,
)

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat


@contextmanager
def admin_for(broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        yield client
    finally:
        client.close()


def produce(bootstrap: str, topic: str, count: int, size: int = 100) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, batch_size=1)
    try:
        for i in range(count):
            producer.send(topic, f"{i:08d}".encode().ljust(size, b"."), partition=0)
            producer.flush(10)  # one batch per record: segment sizes are then predictable
    finally:
        producer.close()


def offset(admin: KafkaAdminClient, topic: str, spec: OffsetSpec) -> int:
    tp = TopicPartition(topic, 0)
    return admin.list_partition_offsets({tp: spec})[tp].offset


def incremental(admin: KafkaAdminClient, kind: ConfigResourceType, name: str, **configs: str) -> None:
    resource = ConfigResource(kind, name, configs={k.replace("_", "."): (AlterConfigOp.SET, v) for k, v in configs.items()})
    answer = admin.alter_configs([resource], incremental=True)
    assert answer == {kind.name.lower(): {name: "OK"}}


def configs_of(admin: KafkaAdminClient, kind: ConfigResourceType, name: str) -> dict[str, dict]:
    return admin.describe_configs([ConfigResource(kind, name)], config_filter="all")[kind.name.lower()][name]


def test_topics_configs_and_deleted_records_survive_a_restart(broker: BrokerProcess) -> None:
    with admin_for(broker) as admin:
        admin.create_topics([NewTopic("kept", 2, 1, topic_configs={"retention.bytes": "10485760"})])
        incremental(admin, ConfigResourceType.TOPIC, "kept", segment_ms="3600000")
        incremental(admin, ConfigResourceType.BROKER, "1", num_partitions="3", log_flush_interval_ms="1000")
        admin.create_topics([NewTopic("dropped", 1, 1)])
        produce(broker.bootstrap, "kept", 10)
        produce(broker.bootstrap, "dropped", 3)
        tp = TopicPartition("kept", 0)
        assert admin.delete_records({tp: 6})[tp]["low_watermark"] == 6
        admin.delete_topics(["dropped"])
        assert not list((broker.data_dir / "logs").glob("dropped-*/*.log"))

    broker.restart()

    with admin_for(broker) as admin:
        topics = set(admin.list_topics())
        assert "kept" in topics and "dropped" not in topics
        kept = configs_of(admin, ConfigResourceType.TOPIC, "kept")
        assert kept["retention.bytes"]["value"] == "10485760"
        assert kept["segment.ms"]["value"] == "3600000"
        assert kept["flush.ms"]["value"] == "1000"
        assert kept["flush.ms"]["config_source"] == "DYNAMIC_BROKER_CONFIG"
        assert configs_of(admin, ConfigResourceType.BROKER, "1")["num.partitions"]["value"] == "3"
        assert offset(admin, "kept", OffsetSpec.EARLIEST) == 6
        assert offset(admin, "kept", OffsetSpec.LATEST) == 10
        # The broker's override now decides the partition count of a topic created without one.
        created = admin.create_topics([NewTopic("dropped")])
        assert created["topics"][0]["num_partitions"] == 3
        assert offset(admin, "dropped", OffsetSpec.LATEST) == 0


@pytest.fixture
def fast_retention_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data", env={"WALRUS_RETENTION_CHECK_INTERVAL_MS": "200"}).start()
    try:
        yield process
    finally:
        process.stop()


def test_segment_and_retention_settings_altered_at_runtime_change_the_log(
    fast_retention_broker: BrokerProcess,
) -> None:
    broker = fast_retention_broker
    with admin_for(broker) as admin:
        admin.create_topics([NewTopic("aging", 1, 1)])
        produce(broker.bootstrap, "aging", 5)
        partition_dir = broker.data_dir / "logs" / "aging-0"
        assert len(list(partition_dir.glob("*.log"))) == 1

        # Small segments from now on: later batches roll the file every few records.
        incremental(admin, ConfigResourceType.TOPIC, "aging", segment_bytes="1024")
        produce(broker.bootstrap, "aging", 30)
        files = len(list(partition_dir.glob("*.log")))
        assert files >= 4
        assert offset(admin, "aging", OffsetSpec.EARLIEST) == 0

        # Retention now removes every sealed file on the broker's next check.
        incremental(admin, ConfigResourceType.TOPIC, "aging", retention_ms="1")
        deadline = time.monotonic() + 30
        while offset(admin, "aging", OffsetSpec.EARLIEST) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        earliest = offset(admin, "aging", OffsetSpec.EARLIEST)
        assert 0 < earliest < 35
        assert offset(admin, "aging", OffsetSpec.LATEST) == 35
        assert len(list(partition_dir.glob("*.log"))) < files
