"""Topic and config administration through aiokafka's AIOKafkaAdminClient, whose
alter_configs sends AlterConfigs: a full replacement of the resource's overrides."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat


def with_admin(broker: BrokerProcess, scenario: Callable[[AIOKafkaAdminClient], Awaitable[None]]) -> None:
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            await scenario(admin)
        finally:
            await admin.close()

    asyncio.run(run())


async def overrides(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """The topic's configs that are its own (config source DYNAMIC_TOPIC_CONFIG = 1)."""
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (resource,) = response.resources
    error_code, _message, _type, _name, entries = resource[:5]
    assert error_code == 0
    return {e[0]: e[1] for e in entries if e[3] == 1}


def topic_errors(response: Any) -> list[int]:
    return [t[1] for t in response.topic_errors]


def test_alter_configs_replaces_the_whole_set_of_overrides(broker: BrokerProcess) -> None:
    async def scenario(admin: AIOKafkaAdminClient) -> None:
        created = await admin.create_topics(
            [NewTopic("ai-replace", 1, 1, topic_configs={"retention.ms": "120000", "segment.bytes": "1048576"})]
        )
        assert topic_errors(created) == [0]
        assert await overrides(admin, "ai-replace") == {"retention.ms": "120000", "segment.bytes": "1048576"}

        (answer,) = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "ai-replace", configs={"max.message.bytes": "2048"})]
        )
        assert [r[0] for r in answer.resources] == [0]
        # Overrides left out of an AlterConfigs are removed, as Kafka does.
        assert await overrides(admin, "ai-replace") == {"max.message.bytes": "2048"}

        (refused,) = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "ai-replace", configs={"cleanup.policy": "compact"})]
        )
        assert [r[0] for r in refused.resources] == [40]  # INVALID_CONFIG
        assert await overrides(admin, "ai-replace") == {"max.message.bytes": "2048"}

    with_admin(broker, scenario)


def test_topic_lifecycle_with_records(broker: BrokerProcess) -> None:
    async def scenario(admin: AIOKafkaAdminClient) -> None:
        assert topic_errors(await admin.create_topics([NewTopic("ai-life", 1, 1)])) == [0]
        dry = await admin.create_topics([NewTopic("ai-dry", 2, 1)], validate_only=True)
        assert topic_errors(dry) == [0]
        assert "ai-dry" not in await admin.list_topics()

        grown = await admin.create_partitions({"ai-life": NewPartitions(2)})
        assert [r[1] for r in grown.topic_errors] == [0]

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for i in range(6):
                await producer.send_and_wait("ai-life", f"v{i}".encode(), partition=1)
        finally:
            await producer.stop()
        tp = TopicPartition("ai-life", 1)
        low = await admin.delete_records({tp: RecordsToDelete(before_offset=2)})
        assert low == {tp: 2}

        deleted = await admin.delete_topics(["ai-life"])
        assert [t[1] for t in deleted.topic_error_codes] == [0]
        assert "ai-life" not in await admin.list_topics()

    with_admin(broker, scenario)


def test_describe_cluster_lists_the_broker(broker: BrokerProcess) -> None:
    async def scenario(admin: AIOKafkaAdminClient) -> None:
        cluster = await admin.describe_cluster()
        assert cluster["controller_id"] == 1
        assert [(b["node_id"], b["port"]) for b in cluster["brokers"]] == [(1, broker.port)]

    with_admin(broker, scenario)
